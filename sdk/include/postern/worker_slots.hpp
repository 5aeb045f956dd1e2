// Blocking work of a plugin (a scanner, a milter, DNS lookups through a
// blocking library) on the host's worker pool, at most `max` at once: the
// pool also serves the store, so one slow dependency must not take all of
// it. Header-only.
#pragma once

#include <postern/sdk_host.hpp>

#include <atomic>
#include <functional>

namespace postern::sdk {

class WorkerSlots {
 public:
  enum class Refusal {
    full,      // max are running: the plugin answers as if its dependency were late
    busy,      // the host's pool took no more work
    shutdown,  // the work was dropped, unrun, as the server stops
  };

  void set_max(int max) { max_ = max; }

  // work runs on a worker and returns what answers the caller; that runs
  // once the slot is free again (so the caller's next request finds it
  // free). refused runs instead, exactly once, when work will not run.
  void run(const Host& host, std::function<std::function<void()>()> work, std::function<void(Refusal)> refused) {
    if (running_.fetch_add(1) >= max_) {
      --running_;
      return refused(Refusal::full);
    }
    bool queued = host.submit(
        nullptr,
        [this, work, refused] {
          std::function<void()> answer = [refused] { refused(Refusal::busy); };
          try {
            answer = work();
          } catch (...) {  // never leave the slot taken
          }
          --running_;
          answer();
        },
        [this, refused](bool ran) {
          if (ran) return;
          --running_;
          refused(Refusal::shutdown);
        });
    if (!queued) {
      --running_;
      refused(Refusal::busy);
    }
  }

 private:
  std::atomic<int> running_{0};
  int max_ = 1;
};

}  // namespace postern::sdk
