// What every delivery of one plugin generation shares.
#pragma once

#include "pool.hpp"
#include "settings.hpp"
#include "sts_cache.hpp"
#include "tls_report.hpp"

#include <postern/sdk_host.hpp>

#include <atomic>
#include <mutex>
#include <random>

namespace postern::outbound {

struct Context {
  Context(sdk::Host h, Settings s, std::string data_dir)
      : host(h), settings(std::move(s)), pool(h, settings.max_per_destination, settings.rate_per_destination),
        reports(data_dir), sts(h, settings, reports, data_dir) {}

  sdk::Host host;
  const Settings settings;
  Pool pool;
  TlsReport reports;  // before sts, which reports to it
  StsCache sts;
  // Whether TLSA answers can be trusted: the resolver proved at start that
  // it validates (Plugin::check_resolver).
  std::atomic<bool> dane_usable{false};

  size_t random_below(size_t n) {
    std::lock_guard lock(rng_mutex_);
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }

 private:
  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace postern::outbound
