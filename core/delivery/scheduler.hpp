// The delivery scheduler: takes messages from the "queue" service to their
// destinations. Local recipients go into the store ("deliver.accounts",
// made idempotent by the queue's delivery ids, so a delivery repeated after
// a crash stores nothing twice); remote recipients wait for a transport
// (the outbound issue). Failures bounce with an RFC 3464 report; temporary
// trouble is retried with exponential backoff until the message's lifetime
// ends. Remote recipients go to the "transport" service, one call per
// destination domain. Everything runs on the main loop; the work is
// service calls.
#pragma once

#include "config/config.hpp"
#include "plugin/host_services.hpp"

#include <postern/record.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace postern::core {

class NotifyHub;

class DeliveryScheduler {
 public:
  DeliveryScheduler(const ServiceDirectory& services, boost::asio::io_context& main, NotifyHub& notify,
                    DeliveryConfig config, std::chrono::milliseconds call_timeout);
  ~DeliveryScheduler();

  void start();
  // Claims nothing more; deliveries under way finish (or their leases
  // lapse and the next start picks them up).
  void stop();
  void reconfigure(DeliveryConfig config);

  size_t in_flight() const { return in_flight_; }

 private:
  struct Job;

  void poll();
  void claimed(pst_status status, std::string_view reply);
  void run(const std::shared_ptr<Job>& job);
  void deliver_next(const std::shared_ptr<Job>& job);
  void deliver_remote(const std::shared_ptr<Job>& job);
  void transported(const std::shared_ptr<Job>& job, const std::string& domain, pst_status s, std::string_view reply);
  // Renews the lease when half of it is gone (or now), then runs next.
  void keep_lease(const std::shared_ptr<Job>& job, std::function<void()> next, bool now = false);
  void finish(const std::shared_ptr<Job>& job);
  void settle(const std::shared_ptr<Job>& job, const sdk::Record& dsn);
  void done(const std::shared_ptr<Job>& job);
  void arm(std::chrono::milliseconds after);
  void call(const std::string& service, const std::string& method, const sdk::Record& request,
            std::function<void(pst_status, std::string_view)> done,
            std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  const ServiceDirectory& services_;
  boost::asio::io_context& main_;
  NotifyHub& notify_;
  DeliveryConfig config_;
  std::chrono::milliseconds call_timeout_;
  std::string hostname_;
  boost::asio::steady_timer timer_;
  uint64_t subscription_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool running_ = false, claiming_ = false, again_ = false;
  size_t in_flight_ = 0;
};

}  // namespace postern::core
