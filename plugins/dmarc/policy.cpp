#include "policy.hpp"

#include <sys/types.h>
#include <opendmarc/dmarc.h>

// Surprise: libopendmarc exports the organisational-domain lookup its own
// alignment check uses, but its public header does not declare it.
extern "C" int opendmarc_get_tld(u_char* domain, u_char* tld, size_t tld_len);

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

namespace postern::dmarc {
namespace {

// libopendmarc keeps the suffix list in globals; calls into it are few and
// short, so one lock keeps every use simple.
std::mutex library_mutex;

u_char* text(const std::string& s) { return reinterpret_cast<u_char*>(const_cast<char*>(s.c_str())); }

std::string policy_name(int p) {
  switch (p) {
    case DMARC_RECORD_P_REJECT: return "reject";
    case DMARC_RECORD_P_QUARANTINE: return "quarantine";
    case DMARC_RECORD_P_NONE: return "none";
    default: return "";
  }
}

int spf_outcome(const std::string& r) {
  if (r == "pass") return DMARC_POLICY_SPF_OUTCOME_PASS;
  if (r == "fail" || r == "softfail") return DMARC_POLICY_SPF_OUTCOME_FAIL;
  if (r == "temperror") return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
  return DMARC_POLICY_SPF_OUTCOME_NONE;
}


}  // namespace

bool load_public_suffix_list(const std::string& path) {
  std::lock_guard lock(library_mutex);
  // The list lives in libopendmarc's globals, shared by every generation of
  // this plugin, and freeing it from one would pull it from under the next
  // (opendmarc_tld_shutdown is never called). So the library stays mapped
  // until the process ends, and with it what the list points to.
  static void* pinned = dlopen("libopendmarc.so.2", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  if (!pinned) return false;
  // What opendmarc_policy_library_init does with OPENDMARC_TLD_TYPE_MOZILLA,
  // without leaving libopendmarc a pointer to our (unloadable) data.
  std::string p = path;
  return opendmarc_tld_read_file(p.data(), const_cast<char*>("//"), const_cast<char*>("*."),
                                 const_cast<char*>("!")) == 0;
}

std::string organizational_domain(const std::string& domain) {
  std::lock_guard lock(library_mutex);
  u_char buf[256] = {};
  if (domain.size() >= sizeof buf || opendmarc_get_tld(text(domain), buf, sizeof buf) != 0) return domain;
  return reinterpret_cast<char*>(buf);
}

Found dmarc_records(const std::vector<std::string>& records) {
  Found found;
  for (const std::string& r : records) {
    // "v=DMARC1" exactly, then ";" or the end (a "v=DMARC10" is not one).
    if (r.size() < 8 || strncasecmp(r.c_str(), "v=DMARC1", 8) != 0) continue;
    size_t next = r.find_first_not_of(" \t", 8);
    if (next != std::string::npos && r[next] != ';') continue;
    if (++found.count == 1) found.record = r;
  }
  return found;
}

Outcome evaluate(const std::string& from_domain, const std::string& peer, const std::string& record,
                 const std::string& published_at, bool from_org, const AuthResults& auth, int sample) {
  std::lock_guard lock(library_mutex);
  Outcome out;
  out.published.domain = published_at;
  std::unique_ptr<DMARC_POLICY_T, decltype(&opendmarc_policy_connect_shutdown)> ctx(
      opendmarc_policy_connect_init(text(peer),
                                    peer.find(':') == std::string::npos ? DMARC_POLICY_IP_TYPE_IPV4
                                                                        : DMARC_POLICY_IP_TYPE_IPV6),
      &opendmarc_policy_connect_shutdown);
  if (!ctx) return out.result = "temperror", out.reason = "out of memory", out;
  opendmarc_policy_store_from_domain(ctx.get(), text(from_domain));
  int status = opendmarc_policy_store_dmarc(ctx.get(), text(record), text(from_domain),
                                            from_org ? text(published_at) : nullptr);
  if (status != DMARC_PARSE_OKAY) {
    out.result = "permerror";
    out.reason = opendmarc_policy_status_to_str(status);
    return out;
  }
  if (auth.spf && !auth.spf->domain.empty())
    opendmarc_policy_store_spf(ctx.get(), text(auth.spf->domain), spf_outcome(auth.spf->result),
                               auth.spf->scope == "helo" ? DMARC_POLICY_SPF_ORIGIN_HELO
                                                         : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
                               nullptr);
  // Only passes: alignment needs nothing else, and libopendmarc lets a
  // later failing d= displace an earlier aligned pass.
  for (const DkimResult& d : auth.dkim)
    if (!d.domain.empty() && d.result == "pass")
      opendmarc_policy_store_dkim(ctx.get(), text(d.domain), text(d.selector), DMARC_POLICY_DKIM_OUTCOME_PASS, nullptr);

  int verdict = opendmarc_get_policy_to_enforce(ctx.get());
  int dkim_alignment = 0, spf_alignment = 0, p = 0, sp = 0, adkim = 0, aspf = 0, pct = 100;
  opendmarc_policy_fetch_alignment(ctx.get(), &dkim_alignment, &spf_alignment);
  opendmarc_policy_fetch_p(ctx.get(), &p);
  opendmarc_policy_fetch_sp(ctx.get(), &sp);
  opendmarc_policy_fetch_adkim(ctx.get(), &adkim);
  opendmarc_policy_fetch_aspf(ctx.get(), &aspf);
  opendmarc_policy_fetch_pct(ctx.get(), &pct);
  out.dkim_aligned = dkim_alignment == DMARC_POLICY_DKIM_ALIGNMENT_PASS;
  out.spf_aligned = spf_alignment == DMARC_POLICY_SPF_ALIGNMENT_PASS;
  out.published.p = policy_name(p);
  out.published.sp = policy_name(sp).empty() ? out.published.p : policy_name(sp);
  out.published.adkim = adkim == DMARC_RECORD_A_STRICT ? "s" : "r";
  out.published.aspf = aspf == DMARC_RECORD_A_STRICT ? "s" : "r";
  out.published.pct = pct;

  if (verdict == DMARC_POLICY_PASS) {
    out.result = "pass";
    out.policy = out.disposition = "none";
    return out;
  }
  // Nothing aligned passed. If a check could not finish, or never ran,
  // that is not the sender's failure.
  bool temporary = (auth.spf && auth.spf->result == "temperror") ||
                   std::any_of(auth.dkim.begin(), auth.dkim.end(), [](const DkimResult& d) { return d.result == "temperror"; });
  if (temporary) return out.result = "temperror", out.reason = "an SPF or DKIM check failed for now", out;
  // SPF runs at MAIL FROM, before any data_end filter; a client it does
  // not judge (loopback) simply has no SPF pass. DKIM runs at data_end
  // too: without its results (dmarc listed first) there is nothing to judge.
  if (!auth.dkim_checked) return out.result = "none", out.reason = "no DKIM results: list dmarc after dkim", out;
  out.result = "fail";
  out.policy = verdict == DMARC_POLICY_REJECT ? "reject" : verdict == DMARC_POLICY_QUARANTINE ? "quarantine" : "none";
  out.disposition = out.policy;
  // pct: the policy applies to that share of failing mail; the rest gets
  // the next milder one.
  if (sample >= pct) out.disposition = out.policy == "reject" ? "quarantine" : "none";
  return out;
}

}  // namespace postern::dmarc
