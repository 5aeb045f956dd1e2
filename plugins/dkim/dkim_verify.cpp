#include "dkim_verify.hpp"

#include "dkim_sign.hpp"  // relaxed_body
#include "message_parts.hpp"

#include <sys/types.h>
// OpenDKIM's header uses C's _Bool.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <algorithm>
#include <cstring>
#include <cctype>
#include <memory>
#include <optional>
#include <set>

namespace postern::dkim {
namespace {

// What one verification's key lookups need and learn (the handle's user
// context).
struct Context {
  const KeyLookup* lookup;
  std::set<std::string> unreachable;  // key names whose lookup failed for now
};

// A d= or s= value fit to be written into Authentication-Results: a name,
// nothing that could open a comment or a quoted string there.
bool token(const std::string& s) {
  return !s.empty() && s.size() <= 253 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_';
  });
}

// The key record for a signature, from the caller's lookup.
DKIM_CBSTAT key_lookup(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  auto* context = static_cast<Context*>(dkim_get_user_context(dkim));
  const KeyLookup* lookup = context ? context->lookup : nullptr;
  const char* selector = reinterpret_cast<const char*>(dkim_sig_getselector(sig));
  const char* domain = reinterpret_cast<const char*>(dkim_sig_getdomain(sig));
  if (!lookup || !selector || !domain || buflen == 0) return DKIM_CBSTAT_ERROR;
  std::string name = std::string(selector) + "._domainkey." + domain;
  // Asked once per verification: a key that could not be had is not asked
  // again by the next signature naming it.
  if (context->unreachable.count(name)) return DKIM_CBSTAT_TRYAGAIN;
  std::optional<std::vector<std::string>> records;
  try {
    records = (*lookup)(name);
  } catch (...) {  // never unwind through OpenDKIM's C frames
    records.reset();
  }
  if (!records) {
    // OpenDKIM reports this as an unknown error: remembered for the result.
    context->unreachable.insert(name);
    return DKIM_CBSTAT_TRYAGAIN;
  }
  // RFC 6376 §3.6.2.2: the key record; several are ambiguous, take the one
  // that says it is one.
  auto record = std::find_if(records->begin(), records->end(), [](const std::string& r) { return r.starts_with("v=DKIM1"); });
  if (record == records->end()) record = records->begin();
  if (record == records->end() || record->size() >= buflen) return DKIM_CBSTAT_NOTFOUND;
  std::memcpy(buf, record->data(), record->size());
  buf[record->size()] = '\0';
  return DKIM_CBSTAT_CONTINUE;
}

// RFC 8601 §2.7.1 results from OpenDKIM's per-signature state.
// The body's length after the signature's body canonicalisation: what an
// l= covering all of it says (RFC 6376 §3.4.3, §3.4.4).
size_t canonical_body_length(DKIM_SIGINFO* sig, std::string_view body) {
  dkim_canon_t header = DKIM_CANON_SIMPLE, canon = DKIM_CANON_SIMPLE;
  dkim_sig_getcanons(sig, &header, &canon);
  if (canon == DKIM_CANON_RELAXED) return relaxed_body(body).size();
  while (body.ends_with("\r\n\r\n")) body.remove_suffix(2);  // simple: trailing empty lines go
  if (body.empty()) return 2;                                  // ... and an empty body is one CRLF
  return body.ends_with("\r\n") ? body.size() : body.size() + 2;
}

std::pair<std::string, std::string> result_of(DKIM* dkim, DKIM_SIGINFO* sig, const std::string& algorithm,
                                              std::string_view body) {
  int error = dkim_sig_geterror(sig);
  // RFC 6376 §3.6.1: a testing key's signatures count for nothing either way.
  if (dkim_sig_getflags(sig) & DKIM_SIGFLAG_TESTKEY) return {"neutral", "testing key (t=y): treated as unsigned"};
  // PASSED alone is not enough: a t=s key's subdomain violation keeps it.
  if (DKIM_SIG_CHECK(sig) && error == DKIM_SIGERROR_OK) {
    if (algorithm == "rsa-sha1") return {"policy", "rsa-sha1 is not accepted (RFC 8301)"};
    // l= shorter than the body: what follows was not signed and could be
    // anything (RFC 6376 §8.2), so the signature vouches for less than the
    // reader sees.
    ssize_t signed_length = -1;
    if (dkim_sig_getcanonlen(dkim, sig, nullptr, nullptr, &signed_length) == DKIM_STAT_OK && signed_length >= 0 &&
        static_cast<size_t>(signed_length) < canonical_body_length(sig, body))
      return {"policy", "the body length limit (l=) leaves text unsigned"};
    return {"pass", ""};
  }
  if (error == DKIM_SIGERROR_OK && dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) return {"fail", "body hash mismatch"};
  std::string why = dkim_sig_geterrorstr(error) ? dkim_sig_geterrorstr(error) : "not evaluated";
  switch (error) {
    case DKIM_SIGERROR_KEYFAIL:
    case DKIM_SIGERROR_UNKNOWN: return {"temperror", why};
    case DKIM_SIGERROR_BADSIG: return {"fail", why};
    case DKIM_SIGERROR_KEYTOOSMALL: return {"policy", why};
    default: return {"permerror", why};
  }
}

// Header fields, then dkim_eoh; its status.
DKIM_STAT feed_header(DKIM* dkim, MessageParts& parts) {
  // A field OpenDKIM cannot parse is left out, not fatal: the signed
  // fields decide (and a From it could not read fails dkim_eoh).
  for (std::string& field : parts.fields) dkim_header(dkim, reinterpret_cast<u_char*>(field.data()), field.size());
  return dkim_eoh(dkim);
}

// The body (if any), then dkim_eom; its status.
DKIM_STAT feed_body(DKIM* dkim, const MessageParts& parts) {
  // dkim_body does not change its input; OpenDKIM's API is not const.
  if (!parts.body.empty()) {
    DKIM_STAT s = dkim_body(dkim, reinterpret_cast<u_char*>(const_cast<char*>(parts.body.data())), parts.body.size());
    if (s != DKIM_STAT_OK) return s;
  }
  return dkim_eom(dkim, nullptr);
}

}  // namespace

bool has_signature(std::string_view message) {
  if (message.starts_with("\r\n")) return false;  // no header section
  size_t end = message.find("\r\n\r\n");
  std::string head(message.substr(0, end == std::string_view::npos ? message.size() : end));
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return head.starts_with("dkim-signature:") || head.find("\ndkim-signature:") != std::string::npos;
}

Verifier::Verifier() : lib_(dkim_init(nullptr, nullptr)) {
  if (!lib_) return;
  dkim_set_key_lookup(lib_, &key_lookup);
  // BADSIGHANDLES: a signature header it cannot parse is listed (as an
  // error), not dropped; STRICTHDRS: two From fields are not accepted
  // (RFC 6376 §8.15); DELAYSIGPROC: keys are asked for once, at the end.
  unsigned int flags = DKIM_LIBFLAGS_BADSIGHANDLES | DKIM_LIBFLAGS_STRICTHDRS | DKIM_LIBFLAGS_DELAYSIGPROC;
  dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
}

Verifier::~Verifier() {
  if (lib_) dkim_close(lib_);
}

std::vector<Signature> Verifier::verify(std::string_view message, const KeyLookup& lookup) const {
  std::vector<Signature> out;
  if (!lib_ || !has_signature(message)) return out;  // unsigned: nothing to say
  DKIM_STAT status = DKIM_STAT_OK;
  std::unique_ptr<DKIM, decltype(&dkim_free)> dkim(
      dkim_verify(lib_, reinterpret_cast<const u_char*>("postern"), nullptr, &status), &dkim_free);
  if (!dkim || status != DKIM_STAT_OK) return out;
  Context context{&lookup, {}};
  dkim_set_user_context(dkim.get(), &context);
  MessageParts parts = split_message(message);
  status = feed_header(dkim.get(), parts);
  if (status == DKIM_STAT_NOSIG) return out;  // unsigned: nothing to say
  if (status != DKIM_STAT_OK) {  // signed, but no usable From, say: the signatures cannot hold
    out.push_back(Signature{"permerror", "", "", "", dkim_geterror(dkim.get()) ? dkim_geterror(dkim.get()) : "bad header"});
    return out;
  }
  feed_body(dkim.get(), parts);
  DKIM_SIGINFO** sigs = nullptr;
  int count = 0;
  if (dkim_getsiglist(dkim.get(), &sigs, &count) != DKIM_STAT_OK) return out;
  for (int i = 0; i < count; ++i) {
    DKIM_SIGINFO* sig = sigs[i];
    if (dkim_sig_getflags(sig) & DKIM_SIGFLAG_IGNORE) continue;
    Signature s;
    // a= as written (OpenDKIM's own field reads rsa-sha1 when a= was never parsed).
    if (auto* a = dkim_sig_gettagvalue(sig, false, reinterpret_cast<u_char*>(const_cast<char*>("a")))) {
      std::string alg = reinterpret_cast<const char*>(a);
      if (alg == "rsa-sha256" || alg == "ed25519-sha256" || alg == "rsa-sha1") s.algorithm = alg;
    }
    auto [result, why] = result_of(dkim.get(), sig, s.algorithm, parts.body);
    s.result = result;
    s.reason = why;
    if (auto* d = dkim_sig_getdomain(sig)) s.domain = reinterpret_cast<const char*>(d);
    if (auto* sel = dkim_sig_getselector(sig)) s.selector = reinterpret_cast<const char*>(sel);
    if (!token(s.domain)) s.domain.clear();  // only names reach the header
    if (!token(s.selector)) s.selector.clear();
    if (s.result != "pass" && context.unreachable.count(s.selector + "._domainkey." + s.domain)) {
      s.result = "temperror";  // RFC 6376 §6.1.2: the key could not be retrieved for now
      s.reason = "key lookup failed";
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace postern::dkim
