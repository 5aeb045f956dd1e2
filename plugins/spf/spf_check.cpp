#include "spf_check.hpp"

// libspf2's headers need these first and have no extern "C".
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
}

#include <cstring>
#include <memory>

namespace postern::spf {
namespace {

const char* type_name(ns_type type) {
  switch (type) {
    case ns_t_a: return "A";
    case ns_t_aaaa: return "AAAA";
    case ns_t_mx: return "MX";
    case ns_t_txt: return "TXT";
    case ns_t_ptr: return "PTR";
    default: return nullptr;
  }
}

// Fills one libspf2 answer from the resolver's text records.
SPF_dns_rr_t* to_rr(SPF_dns_server_t* server, const char* domain, ns_type type, const std::optional<Lookup>& found) {
  if (!found) return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
  if (found->rcode == "NXDOMAIN") return SPF_dns_rr_new_init(server, domain, type, static_cast<int>(found->ttl), HOST_NOT_FOUND);
  if (found->records.empty()) return SPF_dns_rr_new_init(server, domain, type, static_cast<int>(found->ttl), NO_DATA);
  SPF_dns_rr_t* rr = SPF_dns_rr_new_init(server, domain, type, static_cast<int>(found->ttl), NETDB_SUCCESS);
  if (!rr) return nullptr;
  int n = 0;
  for (const std::string& text : found->records) {
    std::string value = text;
    if (type == ns_t_mx) value = text.substr(text.find(' ') + 1);  // "10 mx.example" -> the host
    if (type == ns_t_mx && value == ".") continue;                   // null MX: no host
    size_t size = type == ns_t_a ? sizeof(in_addr) : type == ns_t_aaaa ? sizeof(in6_addr) : value.size() + 1;
    if (SPF_dns_rr_buf_realloc(rr, n, size) != SPF_E_SUCCESS) break;
    SPF_dns_rr_data_t* data = rr->rr[n];
    bool ok = true;
    if (type == ns_t_a) ok = inet_pton(AF_INET, value.c_str(), &data->a) == 1;
    else if (type == ns_t_aaaa) ok = inet_pton(AF_INET6, value.c_str(), &data->aaaa) == 1;
    else std::memcpy(data->txt, value.c_str(), value.size() + 1);  // ptr/mx/txt share the storage
    if (ok) ++n;
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

struct Layer {
  SPF_dns_server_t server{};
  const Resolve* resolve = nullptr;
  int txt_lookups = 0;
  bool first_txt_failed = false;  // the identity's own record could not be looked up
};

SPF_dns_rr_t* lookup(SPF_dns_server_t* server, const char* domain, ns_type type, int) {
  auto* layer = static_cast<Layer*>(server->hook);
  const char* name = type_name(type);
  if (!name) return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
  auto found = (*layer->resolve)(domain, name);
  if (type == ns_t_txt && layer->txt_lookups++ == 0) layer->first_txt_failed = !found;
  return to_rr(server, domain, type, found);
}

}  // namespace

std::string unmapped(const std::string& ip) {
  std::string lower = ip;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.starts_with("::ffff:") && lower.find('.') != std::string::npos) return ip.substr(7);
  return ip;
}

Result check(const Resolve& resolve, const std::string& ip, const std::string& helo, const std::string& sender,
             const std::string& receiver) {
  // A layer of our own, shared by nothing: destroy stays null and the
  // Layer owns it (libspf2 then leaves it alone, see spf_dns.h).
  Layer layer;
  layer.server.lookup = &lookup;
  layer.server.name = "postern";
  layer.server.hook = &layer;
  layer.resolve = &resolve;
  std::unique_ptr<SPF_server_t, decltype(&SPF_server_free)> server(SPF_server_new_dns(&layer.server, 0),
                                                                     &SPF_server_free);
  Result out{"temperror", "", ""};
  if (!server) return out;
  SPF_server_set_rec_dom(server.get(), receiver.c_str());  // else the header names the machine
  // libspf2's default explanation sends senders to openspf.org.
  SPF_response_t* ignored = nullptr;
  SPF_server_set_explanation(server.get(), "the sender's domain does not list this host as allowed to send its mail",
                             &ignored);
  if (ignored) SPF_response_free(ignored);
  std::unique_ptr<SPF_request_t, decltype(&SPF_request_free)> request(SPF_request_new(server.get()),
                                                                       &SPF_request_free);
  if (!request) return out;
  std::string client = unmapped(ip);
  bool v6 = client.find(':') != std::string::npos;
  if ((v6 ? SPF_request_set_ipv6_str(request.get(), client.c_str())
          : SPF_request_set_ipv4_str(request.get(), client.c_str())) != SPF_E_SUCCESS)
    return out.result = "permerror", out;
  SPF_request_set_helo_dom(request.get(), helo.c_str());
  // The null reverse-path: RFC 7208 §2.4 checks postmaster@HELO.
  std::string identity = sender.empty() ? "postmaster@" + helo : sender;
  if (SPF_request_set_env_from(request.get(), identity.c_str()) != 0) return out;  // out of memory: temperror
  SPF_response_t* response = nullptr;
  SPF_request_query_mailfrom(request.get(), &response);
  std::unique_ptr<SPF_response_t, decltype(&SPF_response_free)> held(response, &SPF_response_free);
  if (!response) return out;
  // libspf2 lets 127.0.0.0/8 and ::1 pass without a lookup: such a "pass"
  // says nothing about the sender's domain, so it is not reported at all.
  if (SPF_response_reason(response) == SPF_REASON_LOCALHOST) return out.result = "", out;
  // libspf2 leaves the result "(invalid)" when the domain's own record
  // cannot be used: its lookup failed for now (RFC 7208 §4.4: temperror)
  // or it cannot be parsed (§4.6: permerror). Later lookups that fail are
  // libspf2's to judge.
  SPF_result_t result = SPF_response_result(response);
  if (result == SPF_RESULT_INVALID)
    out.result = layer.first_txt_failed ? "temperror" : "permerror";
  else
    out.result = SPF_strresult(result);
  if (const char* v = SPF_response_get_received_spf_value(response)) {
    // Its first word is libspf2's result, which can be "(invalid)".
    std::string value = v;
    out.received_spf = out.result + value.substr(std::min(value.find(' '), value.size()));
  }
  if (const char* e = SPF_response_get_explanation(response)) out.explanation = e;
  return out;
}

}  // namespace postern::spf
