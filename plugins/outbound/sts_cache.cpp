#include "sts_cache.hpp"

#include <postern/dns.hpp>
#include <postern/sdk_protocol.hpp>

#include <sys/stat.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <fstream>

namespace postern::outbound {
namespace {

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }
using FetchDone = std::function<void(std::optional<std::string>, std::string)>;

class HttpsGet : public sdk::ProtocolSession {
 public:
  HttpsGet(sdk::Connection conn, std::string request, size_t max, FetchDone done)
      : ProtocolSession(conn), request_(std::move(request)), max_(max), done_(std::move(done)) {}
  ~HttpsGet() override { finish(); }

  void on_open(const sdk::ConnInfo& info) override {
    if (!info.tls_verified) {
      error_ = "certificate not trusted: " + info.tls_verify_error;
      return conn().close();
    }
    conn().write(request_);
  }
  bool on_data(std::string_view bytes) override {
    if (response_.size() + bytes.size() > max_ + kMaxHead) {
      error_ = "the policy is too large";
      return false;
    }
    response_.append(bytes);
    return true;
  }
  void on_timeout() override { error_ = "the policy server did not answer in time"; }

 private:
  static constexpr size_t kMaxHead = 16 * 1024;

  void finish() {
    auto done = std::exchange(done_, nullptr);
    if (!done) return;
    if (!error_.empty()) return done(std::nullopt, error_);
    size_t head_end = response_.find("\r\n\r\n");
    if (head_end == std::string::npos) return done(std::nullopt, "no complete HTTP answer");
    std::string_view head(response_.data(), head_end);
    // "HTTP/1.1 200 OK"
    if (!head.starts_with("HTTP/1.") || head.size() < 12 || head.substr(9, 3) != "200")
      return done(std::nullopt, "HTTP answer: " + std::string(head.substr(0, head.find('\r'))));
    std::string lower(head);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find("\r\ntransfer-encoding:") != std::string::npos)
      return done(std::nullopt, "chunked HTTP answers are not supported");
    std::string body = response_.substr(head_end + 4);
    if (size_t cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
      size_t v = cl + 17;
      while (v < lower.size() && lower[v] == ' ') ++v;
      size_t n = 0;
      auto [p, ec] = std::from_chars(lower.data() + v, lower.data() + lower.size(), n);
      if (ec != std::errc() || n != body.size()) return done(std::nullopt, "truncated HTTP answer");
    }
    done(std::move(body), {});
  }

  std::string request_, response_, error_;
  size_t max_;
  FetchDone done_;
};

}  // namespace

void https_get(const sdk::Host& host, const std::string& address, uint16_t port, const std::string& name,
               const std::string& path, const std::string& ca_file, size_t max_body, FetchDone done) {
  sdk::ConnectRequest r;
  r.address = address;
  r.port = port;
  r.tls = PST_TLS_IMPLICIT;
  r.server_name = name;
  r.verify = PST_VERIFY_PKIX;
  r.ca_file = ca_file;
  r.connect_timeout = std::chrono::seconds(10);
  r.idle_timeout = std::chrono::seconds(30);
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + name +
                        "\r\nUser-Agent: postern\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";
  auto shared = std::make_shared<FetchDone>(std::move(done));
  bool made = sdk::connect(
      host, r,
      [request, max_body, shared](sdk::Connection conn, const sdk::ConnInfo&) -> sdk::ProtocolSession* {
        return new HttpsGet(conn, request, max_body, *shared);
      },
      [shared](std::string_view reason) { (*shared)(std::nullopt, std::string(reason)); });
  if (!made) (*shared)(std::nullopt, "cannot open a connection");
}

// The file: "<expires> <id>\n" then the policy as fetched. The domain
// names the file; it was a DNS name we looked up, so it holds no '/'.
void StsCache::keep(const std::string& domain, Entry e) {
  if (!dir_.empty() && domain.find('/') == std::string::npos && !domain.starts_with(".")) {
    ::mkdir(dir_.c_str(), 0700);
    // A temporary name no domain has (a leading dot), unique per write:
    // two fetches of one domain may finish at once.
    static std::atomic<uint64_t> writes{0};
    std::string path = dir_ + "/" + domain, tmp = dir_ + "/." + domain + "." + std::to_string(++writes);
    std::ofstream out(tmp, std::ios::trunc);
    out << e.expires << " " << e.id << "\n" << e.text;
    out.close();
    if (out) std::rename(tmp.c_str(), path.c_str());
  }
  std::lock_guard lock(mutex_);
  entries_[domain] = std::move(e);
}

std::optional<StsCache::Entry> StsCache::load(const std::string& domain) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(domain); it != entries_.end()) return it->second;
  }
  if (dir_.empty() || domain.find('/') != std::string::npos || domain.starts_with(".")) return std::nullopt;
  std::ifstream in(dir_ + "/" + domain);
  Entry e;
  if (!(in >> e.expires >> e.id)) return std::nullopt;
  in.get();
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > sdk::mta_sts::kMaxPolicySize) return std::nullopt;
  std::string error;
  auto p = sdk::mta_sts::parse_policy(text, error);
  if (!p) return std::nullopt;
  e.policy = *p;
  e.text = std::move(text);
  std::lock_guard lock(mutex_);
  return entries_.try_emplace(domain, std::move(e)).first->second;  // a fetch meanwhile wins
}

std::optional<sdk::mta_sts::Policy> StsCache::cached(const std::string& domain, const std::string& id) {
  auto e = load(domain);
  if (!e || e->expires < unix_now()) return std::nullopt;
  if (!id.empty() && e->id != id) return std::nullopt;
  return e->policy;
}

void StsCache::policy(const std::string& domain, Done done) {
  sdk::DnsClient(host_, nullptr).query("_mta-sts." + domain, "TXT", [this, domain, done](sdk::Result<sdk::DnsAnswer> r) {
    std::optional<std::string> id;
    if (r && r->rcode == "NOERROR") id = sdk::mta_sts::record_id(r->records);
    // RFC 8461 §5.1: no record (or no answer) but a policy still cached: use it.
    if (!id) return done(cached(domain, {}));
    if (auto p = cached(domain, *id)) return done(p);
    fetch(domain, *id, done);
  });
}

void StsCache::fetch(const std::string& domain, const std::string& id, Done done) {
  std::string name = "mta-sts." + domain;
  sdk::DnsClient(host_, nullptr).query(name, "A", [this, domain, id, name, done](sdk::Result<sdk::DnsAnswer> r) {
    if (!r || !r->exists()) {
      host_.warning("mta_sts.fetch_failed", {{"domain", domain}, {"reason", "no address for " + name}});
      reports_.failure(domain, "sts", "sts-policy-fetch-error", name, "", "no address for " + name);
      return done(cached(domain, {}));
    }
    https_get(host_, r->records.front(), settings_.mta_sts_port, name, "/.well-known/mta-sts.txt", settings_.ca_file,
              sdk::mta_sts::kMaxPolicySize, [this, domain, id, done](std::optional<std::string> body, std::string error) {
                std::optional<sdk::mta_sts::Policy> p;
                if (body) p = sdk::mta_sts::parse_policy(*body, error);
                if (!p) {
                  host_.warning("mta_sts.fetch_failed", {{"domain", domain}, {"reason", error}});
                  reports_.failure(domain, "sts", body ? "sts-policy-invalid" : "sts-policy-fetch-error",
                                   "mta-sts." + domain, "", error);
                  return done(cached(domain, {}));
                }
                keep(domain, {id, *p, *body, unix_now() + static_cast<int64_t>(p->max_age)});
                host_.info("mta_sts.policy", {{"domain", domain}, {"id", id},
                                              {"mode", p->mode == sdk::mta_sts::Mode::enforce   ? "enforce"
                                                       : p->mode == sdk::mta_sts::Mode::testing ? "testing"
                                                                                                 : "none"}});
                done(p);
              });
  });
}

}  // namespace postern::outbound
