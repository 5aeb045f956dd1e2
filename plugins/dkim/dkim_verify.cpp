#include "dkim_verify.hpp"

#include <sys/types.h>
// OpenDKIM's header uses C's _Bool and has no extern "C".
#define _Bool bool
extern "C" {
#include <opendkim/dkim.h>
}
#undef _Bool

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>

namespace postern::dkim {
namespace {

// What one verification's key lookups need and learn (the handle's user
// context).
struct Context {
  const KeyLookup* lookup;
  std::set<std::string> unreachable;  // key names whose lookup failed for now
};

// The key record for a signature, from the caller's lookup.
DKIM_CBSTAT key_lookup(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  auto* context = static_cast<Context*>(dkim_get_user_context(dkim));
  const KeyLookup* lookup = context ? context->lookup : nullptr;
  const char* selector = reinterpret_cast<const char*>(dkim_sig_getselector(sig));
  const char* domain = reinterpret_cast<const char*>(dkim_sig_getdomain(sig));
  if (!lookup || !selector || !domain || buflen == 0) return DKIM_CBSTAT_ERROR;
  std::string name = std::string(selector) + "._domainkey." + domain;
  auto records = (*lookup)(name);
  if (!records) {
    // OpenDKIM reports this as an unknown error: remembered for the result.
    context->unreachable.insert(name);
    return DKIM_CBSTAT_TRYAGAIN;
  }
  if (records->empty()) return DKIM_CBSTAT_NOTFOUND;
  const std::string& record = records->front();  // RFC 6376 §3.6.2.2: several records are ambiguous
  size_t n = std::min(record.size(), buflen - 1);
  std::memcpy(buf, record.data(), n);
  buf[n] = '\0';
  return DKIM_CBSTAT_CONTINUE;
}

// RFC 8601 §2.7.1 results from OpenDKIM's per-signature error.
std::pair<std::string, std::string> result_of(DKIM_SIGINFO* sig) {
  if (DKIM_SIG_CHECK(sig)) return {"pass", ""};
  int error = dkim_sig_geterror(sig);
  std::string why = dkim_sig_geterrorstr(error) ? dkim_sig_geterrorstr(error) : "unknown error";
  switch (error) {
    case DKIM_SIGERROR_KEYFAIL: return {"temperror", why};
    case DKIM_SIGERROR_BADSIG: return {"fail", why};
    case DKIM_SIGERROR_OK:  // the signature matched, the body hash did not
      return {"fail", "body hash mismatch"};
    default: return {"permerror", why};
  }
}

}  // namespace

Verifier::Verifier() : lib_(dkim_init(nullptr, nullptr)) {
  if (lib_) dkim_set_key_lookup(lib_, &key_lookup);
}

Verifier::~Verifier() {
  if (lib_) dkim_close(lib_);
}

std::vector<Signature> Verifier::verify(std::string_view message, const KeyLookup& lookup) const {
  std::vector<Signature> out;
  if (!lib_) return out;
  DKIM_STAT status = DKIM_STAT_OK;
  std::unique_ptr<DKIM, decltype(&dkim_free)> dkim(
      dkim_verify(lib_, reinterpret_cast<const u_char*>("postern"), nullptr, &status), &dkim_free);
  if (!dkim || status != DKIM_STAT_OK) return out;
  Context context{&lookup, {}};
  dkim_set_user_context(dkim.get(), &context);
  // Header fields one by one, each with its folding but without its final
  // CRLF; then the body as it is.
  size_t pos = 0, end = message.find("\r\n\r\n");
  size_t header_end = end == std::string_view::npos ? message.size() : end + 2;
  while (pos < header_end) {
    size_t next = pos;
    do {
      size_t nl = message.find("\r\n", next);
      next = nl == std::string_view::npos || nl >= header_end ? header_end : nl + 2;
    } while (next < header_end && (message[next] == ' ' || message[next] == '\t'));
    std::string field(message.substr(pos, next - pos));
    if (field.size() >= 2 && field.ends_with("\r\n")) field.resize(field.size() - 2);
    if (!field.empty()) dkim_header(dkim.get(), reinterpret_cast<u_char*>(field.data()), field.size());
    pos = next;
  }
  status = dkim_eoh(dkim.get());
  if (status == DKIM_STAT_NOSIG) return out;  // unsigned: nothing to say
  if (end != std::string_view::npos) {
    std::string body(message.substr(end + 4));
    dkim_body(dkim.get(), reinterpret_cast<u_char*>(body.data()), body.size());
  }
  dkim_eom(dkim.get(), nullptr);
  DKIM_SIGINFO** sigs = nullptr;
  int count = 0;
  if (dkim_getsiglist(dkim.get(), &sigs, &count) != DKIM_STAT_OK) return out;
  for (int i = 0; i < count; ++i) {
    DKIM_SIGINFO* sig = sigs[i];
    if (dkim_sig_getflags(sig) & DKIM_SIGFLAG_IGNORE) continue;
    Signature s;
    auto [result, why] = result_of(sig);
    s.result = result;
    s.reason = why;
    if (auto* d = dkim_sig_getdomain(sig)) s.domain = reinterpret_cast<const char*>(d);
    if (auto* sel = dkim_sig_getselector(sig)) s.selector = reinterpret_cast<const char*>(sel);
    if (s.result != "pass" && context.unreachable.count(s.selector + "._domainkey." + s.domain)) {
      s.result = "temperror";  // RFC 6376 §6.1.2: the key could not be retrieved for now
      s.reason = "key lookup failed";
    }
    dkim_alg_t alg = 0;
    if (dkim_sig_getsignalg(sig, &alg) == DKIM_STAT_OK)
      s.algorithm = alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256" : alg == DKIM_SIGN_RSASHA256 ? "rsa-sha256" : "rsa-sha1";
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace postern::dkim
