// One "deliver" call of the transport: one message to the recipients of
// one destination domain. Finds where the mail goes (a smart host, or the
// domain's MX hosts in RFC 5321 §5.1 order), what each host must prove
// (DANE when its TLSA records are DNSSEC-authenticated, else the domain's
// MTA-STS policy, else opportunistic TLS), then tries host after host,
// address after address, until one takes the transaction. Steps run one at
// a time; the only concurrent event is the deadline, hence the lock.
#pragma once

#include "client.hpp"
#include "context.hpp"

#include <postern/dns.hpp>
#include <postern/mta_sts.hpp>
#include <postern/sdk_filter.hpp>
#include <postern/sdk_service.hpp>
#include <postern/transport.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace postern::outbound {

class Delivery : public std::enable_shared_from_this<Delivery> {
 public:
  Delivery(std::shared_ptr<Context> ctx, sdk::transport::Message message, sdk::ReplyPtr reply,
           std::chrono::milliseconds deadline);
  void start();

 private:
  // One host to try, with what it must prove.
  struct Target {
    std::string name;                  // MX host or smart host
    std::vector<std::string> addresses;
    uint16_t port = 25;
    bool implicit_tls = false;
    pst_tls_verify verify = PST_VERIFY_NONE;
    bool tls_required = false, verify_required = false;
    std::vector<std::string> tlsa;
    std::string policy;                // TLS-RPT: "tlsa", "sts", "no-policy-found"
    const Relay* relay = nullptr;
    std::string username, password;  // AUTH at a smart host
  };

  void outbound_stage();
  void begin();
  void route();
  void with_credentials(Target t);
  bool done();
  void apply_sts(Target& t) const;
  void note(const std::string& error, const std::string& status = "", bool keep_first = false);
  // What REQUIRETLS and "TLS-Required: No" change; false: skip the host.
  bool apply_message_policy(Target& t);
  void lookup_mx();
  void with_policy(std::vector<std::string> hosts, bool mx_secure);
  void next_host();
  std::vector<std::string> address_types() const;
  void resolve(Target target, std::vector<std::string> types);
  void check_tlsa(Target target);
  void try_addresses(Target target, size_t index);
  void connected(const Target& target, size_t index, Client* client, Unusable why, const std::string& reason);
  void transact(Client* client, std::string label);
  void sent(std::string label, Client* client, std::vector<RcptOutcome> outcomes);
  void all(const std::string& state, const std::string& status, const std::string& text);
  void respond();
  Envelope envelope() const;
  std::string pool_key() const;

  std::shared_ptr<Context> ctx_;
  sdk::transport::Message message_;
  std::shared_ptr<const std::string> data_;
  std::unique_ptr<sdk::Pipeline> pipeline_;  // the outbound stage's transaction, ended with the delivery
  sdk::ReplyPtr reply_;
  std::chrono::milliseconds deadline_;
  std::vector<sdk::transport::Result> results_;

  std::vector<std::string> hosts_;  // MX hosts still to try, in order
  size_t host_index_ = 0, addresses_tried_ = 0;
  bool mx_secure_ = false;
  std::optional<sdk::mta_sts::Policy> sts_;
  std::string last_error_ = "no host could be reached";
  std::string last_status_ = "4.4.1";
  bool entered_ = false;
  // REQUIRETLS (RFC 8689): whether every host failed only for want of it.
  bool requiretls_refused_ = false, other_failure_ = false;
  bool ignore_policy_ = false;  // "TLS-Required: No" (RFC 8689 §4.1)
  bool reused_ = false;         // the transaction runs on a pooled connection
  bool noted_ = false;          // last_error_ says something specific
  uint64_t timer_ = 0;

  std::mutex mutex_;
  bool responded_ = false;
};

}  // namespace postern::outbound
