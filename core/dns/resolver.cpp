#include "dns/resolver.hpp"

#include "log/logger.hpp"

#include <postern/record.hpp>

#include <arpa/nameser.h>
#include <openssl/rand.h>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace postern::core {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (unsigned char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if ((std::isalnum(c) || c == '-' || c == '_') && ++label <= 63) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

Resolver::Resolver(asio::io_context& loop, DnsConfig config)
    : loop_(loop), config_(std::move(config)), timer_(loop) {}

Resolver::~Resolver() {
  *alive_ = false;
  alive_.reset();
  timer_.cancel();
  if (channel_) {
    ares_destroy(channel_);  // fails what is in flight (our callbacks check alive)
    channel_ = nullptr;
  }
  for (auto& [fd, w] : watches_) {
    w.descriptor->cancel();
    w.descriptor->release();  // c-ares owns its sockets: never let Asio close them
  }
  ares_library_cleanup();
}

bool Resolver::start(std::string& error) {
  if (int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS)
    return error = std::string("c-ares: ") + ares_strerror(rc), false;
  ares_options options{};
  options.sock_state_cb = &Resolver::on_socket_state;
  options.sock_state_cb_data = this;
  options.timeout = static_cast<int>(config_.timeout.count());
  options.tries = static_cast<int>(config_.tries);
  // EDNS0 with a 1232-byte buffer (the DNS flag day size): without the
  // flag, c-ares 1.18 takes any UDP answer over 512 bytes for truncated.
  options.flags = ARES_FLAG_EDNS;
  options.ednspsz = 1232;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ;
  if (int rc = ares_init_options(&channel_, &options, mask); rc != ARES_SUCCESS)
    return error = std::string("c-ares: ") + ares_strerror(rc), false;
  if (!config_.servers.empty()) {
    std::string csv;
    for (const auto& s : config_.servers) csv += (csv.empty() ? "" : ",") + s;
    if (int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS)
      return error = "dns.servers: " + std::string(ares_strerror(rc)), false;
  }
  return true;
}

void Resolver::query(std::string name, uint16_t type, Done done) {
  asio::post(loop_, [this, alive = std::weak_ptr<bool>(alive_), name = lower(name), type, done = std::move(done)] {
    if (alive.expired()) return;
    lookup(Key{name, type}, done);
  });
}

void Resolver::lookup(const Key& key, Done done) {
  if (auto it = cache_.find(key); it != cache_.end()) {
    auto now = Clock::now();
    if (it->second.expires > now) {
      dns::Answer a = it->second.answer;
      a.ttl = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(it->second.expires - now).count());
      return done(PST_OK, a, {});
    }
    cache_.erase(it);
  }
  auto& waiters = waiting_[key];
  waiters.push_back(std::move(done));
  if (waiters.size() == 1) send(key);  // one query serves everyone asking meanwhile
}

struct QueryContext {
  Resolver* resolver;
  std::weak_ptr<bool> alive;
  std::string name;
  uint16_t type;
};

void Resolver::send(const Key& key) {
  unsigned char* buf = nullptr;
  int len = 0;
  // EDNS0 (so big answers come over UDP) and the AD bit set in the query:
  // a validating resolver then says whether the answer is authenticated
  // (RFC 6840 §5.7). ares_query cannot set AD, so the query is built here.
  // The ID must be unpredictable: c-ares 1.18's ares_send keeps the one
  // given here (only ares_query randomises), and the source port is reused.
  unsigned short id = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id);
  int rc = ares_create_query(key.name.c_str(), ns_c_in, key.type, id, 1, &buf, &len, 1232);
  if (rc != ARES_SUCCESS) return answered(key, rc, {});
  buf[3] |= 0x20;
  auto* context = new QueryContext{this, alive_, key.name, key.type};
  ares_send(
      channel_, buf, len,
      [](void* arg, int status, int, unsigned char* abuf, int alen) {
        std::unique_ptr<QueryContext> c(static_cast<QueryContext*>(arg));
        if (c->alive.expired()) return;
        std::string_view message(reinterpret_cast<const char*>(abuf), abuf ? static_cast<size_t>(alen) : 0);
        c->resolver->answered(Key{c->name, c->type}, status, message);
      },
      context);
  ares_free_string(buf);
  schedule_timeout();
}

void Resolver::answered(const Key& key, int status, std::string_view message) {
  auto it = waiting_.find(key);
  if (it == waiting_.end()) return;
  std::vector<Done> waiters = std::move(it->second);
  waiting_.erase(it);
  std::optional<dns::Answer> answer;
  if (!message.empty()) answer = dns::parse_response(message, key.type);
  if (!answer) {
    std::string why = status == ARES_SUCCESS ? "malformed DNS answer" : std::string("DNS: ") + ares_strerror(status);
    for (auto& w : waiters) w(PST_ERR_RETRYABLE, {}, why);
    return;
  }
  // SERVFAIL, REFUSED, FORMERR...: trouble, never "no such record".
  if (answer->rcode != "NOERROR" && answer->rcode != "NXDOMAIN") {
    for (auto& w : waiters) w(PST_ERR_RETRYABLE, {}, "DNS: the server answered " + answer->rcode);
    return;
  }
  remember(key, *answer);
  for (auto& w : waiters) w(PST_OK, *answer, {});
}

// Answers (and, RFC 2308, negative answers) live for their TTL, capped;
// the cache holds at most cache_entries (expired ones go first).
void Resolver::remember(const Key& key, const dns::Answer& answer) {
  bool negative = answer.records.empty();
  auto cap = negative ? config_.negative_ttl : config_.max_ttl;
  auto ttl = std::min<std::chrono::milliseconds>(std::chrono::seconds(answer.ttl), cap);
  if (ttl.count() <= 0 || config_.cache_entries == 0) return;
  if (cache_.size() >= config_.cache_entries) {
    auto now = Clock::now();
    std::erase_if(cache_, [&](const auto& e) { return e.second.expires <= now; });
    if (cache_.size() >= config_.cache_entries)  // full of live answers: the one expiring soonest goes
      cache_.erase(std::min_element(cache_.begin(), cache_.end(), [](auto& a, auto& b) {
        return a.second.expires < b.second.expires;
      }));
  }
  cache_[key] = Entry{answer, Clock::now() + ttl};
}

// --- c-ares on the event loop ---

void Resolver::on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
  auto* self = static_cast<Resolver*>(data);
  if (!readable && !writable) {
    if (auto it = self->watches_.find(fd); it != self->watches_.end()) {
      it->second.descriptor->cancel();
      it->second.descriptor->release();
      self->watches_.erase(it);
    }
    return;
  }
  Watch& w = self->watches_[fd];
  if (!w.descriptor) {
    w.descriptor = std::make_unique<asio::posix::stream_descriptor>(self->loop_);
    boost::system::error_code ec;
    w.descriptor->assign(fd, ec);  // never throw through c-ares's C frames
    if (ec) {
      log_error("dns.socket_failed", {{"reason", ec.message()}});
      self->watches_.erase(fd);
      return;
    }
    w.generation = ++self->generations_;
  }
  w.read = readable;
  w.write = writable;
  self->arm(fd);
}

void Resolver::arm(ares_socket_t fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  Watch& w = it->second;
  auto wait = [this, fd, generation = w.generation, alive = std::weak_ptr<bool>(alive_)](bool for_read) {
    return [this, fd, generation, alive, for_read](const boost::system::error_code& ec) {
      if (alive.expired()) return;
      auto it = watches_.find(fd);
      if (it == watches_.end() || it->second.generation != generation) return;  // a later socket on that number
      (for_read ? it->second.reading : it->second.writing) = false;
      if (ec == asio::error::operation_aborted) return;
      // Any other error: let c-ares look at the socket itself.
      ares_process_fd(channel_, for_read ? fd : ARES_SOCKET_BAD, for_read ? ARES_SOCKET_BAD : fd);
      arm(fd);
      schedule_timeout();
    };
  };
  if (w.read && !w.reading) {
    w.reading = true;
    w.descriptor->async_wait(asio::posix::stream_descriptor::wait_read, wait(true));
  }
  if (w.write && !w.writing) {
    w.writing = true;
    w.descriptor->async_wait(asio::posix::stream_descriptor::wait_write, wait(false));
  }
}

void Resolver::schedule_timeout() {
  timeval max{1, 0}, tv{};
  timeval* next = ares_timeout(channel_, &max, &tv);
  timer_.expires_after(std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec));
  timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retries and timeouts
    if (!waiting_.empty()) schedule_timeout();
  });
}

// --- the built-in service ---

void Resolver::handle(std::string_view method, std::string_view request,
                      std::function<void(pst_status, std::string)> reply) {
  auto r = sdk::Record::parse(request);
  if (method != "query") return reply(PST_ERR_UNSUPPORTED, "unknown method (known: query)");
  std::string name = r ? lower(r->get_or("name", "")) : "";
  auto type = r ? dns::type_from_name(r->get_or("type", "")) : std::nullopt;
  if (!valid_name(name) || !type) return reply(PST_ERR_INVALID, "query needs name and type (A AAAA MX TXT PTR CNAME TLSA)");
  query(name, *type, [reply](pst_status status, const dns::Answer& a, const std::string& error) {
    if (status != PST_OK) return reply(status, error);
    sdk::Record out;
    out.add("rcode", a.rcode).add("ad", a.authenticated ? "1" : "0").add("ttl", a.ttl);
    for (const auto& rec : a.records) out.add("record", rec);
    reply(PST_OK, out.encode());
  });
}

}  // namespace postern::core
