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
  bool trouble = false;  // a lookup failed for now (timeout, SERVFAIL)
};

SPF_dns_rr_t* lookup(SPF_dns_server_t* server, const char* domain, ns_type type, int) {
  auto* layer = static_cast<Layer*>(server->hook);
  const char* name = type_name(type);
  if (!name) return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
  auto found = (*layer->resolve)(domain, name);
  if (!found) layer->trouble = true;
  return to_rr(server, domain, type, found);
}

}  // namespace

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
  std::unique_ptr<SPF_request_t, decltype(&SPF_request_free)> request(SPF_request_new(server.get()),
                                                                       &SPF_request_free);
  bool v6 = ip.find(':') != std::string::npos;
  if ((v6 ? SPF_request_set_ipv6_str(request.get(), ip.c_str()) : SPF_request_set_ipv4_str(request.get(), ip.c_str())) !=
      SPF_E_SUCCESS)
    return out.result = "permerror", out;
  SPF_request_set_helo_dom(request.get(), helo.c_str());
  // The null reverse-path: RFC 7208 §2.4 checks postmaster@HELO.
  std::string identity = sender.empty() ? "postmaster@" + helo : sender;
  if (SPF_request_set_env_from(request.get(), identity.c_str()) != 0) return out.result = "none", out;
  SPF_response_t* response = nullptr;
  SPF_request_query_mailfrom(request.get(), &response);
  std::unique_ptr<SPF_response_t, decltype(&SPF_response_free)> held(response, &SPF_response_free);
  if (!response) return out;
  // libspf2 calls a record it cannot parse "(invalid)": RFC 7208 §4.6 makes
  // that a permerror.
  SPF_result_t result = SPF_response_result(response);
  out.result = result == SPF_RESULT_INVALID ? "permerror" : SPF_strresult(result);
  // libspf2 1.2.10 turns a lookup that failed for now (TRY_AGAIN) into a
  // permerror; RFC 7208 §2.6.6 says temperror, and the sender retries.
  if (layer.trouble && (out.result == "permerror" || out.result == "none")) out.result = "temperror";
  if (const char* v = SPF_response_get_received_spf_value(response)) out.received_spf = v;
  if (const char* e = SPF_response_get_explanation(response)) out.explanation = e;
  return out;
}

}  // namespace postern::spf
