#include "lookup.hpp"

#include <postern/dns.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <set>

namespace postern::dnsbl {
namespace {

// Answers arrive on core threads and the deadline on the main loop: the
// state is shared and locked, and whichever comes last finishes the round.
class Round : public std::enable_shared_from_this<Round> {
 public:
  Round(sdk::Host host, std::vector<Query> queries, std::function<void(Findings)> done)
      : host_(host), queries_(std::move(queries)), pending_(queries_.size()), done_(std::move(done)) {}

  void start(std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    auto timer = host_.start_timer(nullptr, timeout, [self](bool fired) {
      if (fired) self->finish(nullptr);
    });
    {
      std::lock_guard lock(mutex_);
      timer_ = timer;
    }
    sdk::DnsClient dns(host_, nullptr);
    for (size_t i = 0; i < queries_.size(); ++i)
      dns.query(queries_[i].name, "A", [self, i](sdk::Result<sdk::DnsAnswer> a) { self->answer(i, a); });
  }

 private:
  void answer(size_t i, const sdk::Result<sdk::DnsAnswer>& a) {
    std::unique_lock lock(mutex_);
    if (!done_) return;  // past the deadline
    if (!a) {
      // The resolver refusing the name as no host name is an answer, not trouble.
      if (a.error().status != PST_ERR_INVALID) ++findings_.failed;
    } else {
      for (const std::string& record : a->records)
        if (queries_[i].list->listed(record)) {
          findings_.hits.push_back(Hit{queries_[i].list, queries_[i].subject, record});
          break;
        }
    }
    if (--pending_ == 0) finish(&lock);
  }

  // With lock held (from answer) or not (from the timer).
  void finish(std::unique_lock<std::mutex>* held) {
    std::unique_lock<std::mutex> own;
    if (!held) own = std::unique_lock(mutex_);
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    findings_.unanswered = pending_;
    Findings findings = std::move(findings_);
    std::optional<uint64_t> timer = timer_;
    if (held) held->unlock();
    else own.unlock();
    if (timer) host_.cancel_timer(*timer);
    done(std::move(findings));
  }

  sdk::Host host_;
  std::vector<Query> queries_;
  std::mutex mutex_;
  size_t pending_;
  Findings findings_;
  std::optional<uint64_t> timer_;
  std::function<void(Findings)> done_;
};

}  // namespace

int Findings::score() const {
  std::set<const List*> counted;
  int total = 0;
  for (const Hit& h : hits)
    if (counted.insert(h.list).second) total += h.list->weight;
  return total;
}

std::string Findings::listed(size_t max) const {
  std::string out;
  for (const Hit& h : hits) {
    std::string item = h.list->name + " (" + h.subject + ")";
    if (out.size() + item.size() + 2 > max) break;
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

std::string Findings::list_names() const {
  std::string out;
  std::set<const List*> named;
  for (const Hit& h : hits)
    if (named.insert(h.list).second) out += (out.empty() ? "" : ", ") + h.list->name;
  return out;
}

void lookup(sdk::Host host, std::vector<Query> queries, std::chrono::milliseconds timeout,
            std::function<void(Findings)> done) {
  if (queries.empty()) return done(Findings{});
  std::make_shared<Round>(host, std::move(queries), std::move(done))->start(timeout);
}

}  // namespace postern::dnsbl
