#include "report_mail.hpp"

#include <postern/dns.hpp>
#include <postern/mail_date.hpp>
#include <postern/queue.hpp>
#include <postern/store.hpp>

namespace postern::outbound {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// One address at a time, then the next domain; lines collects the summary.
struct Run : std::enable_shared_from_this<Run> {
  std::shared_ptr<Context> ctx;
  std::string day;
  std::map<std::string, std::string> reports;  // domain -> JSON
  std::map<std::string, std::string>::const_iterator next;
  std::string lines;
  std::string json;  // the current domain's report
  std::function<void(std::string)> done;

  void domain() {
    if (next == reports.end()) return done(lines);
    std::string d = next->first;
    json = next->second;
    ++next;
    auto self = shared_from_this();
    sdk::DnsClient(ctx->host, nullptr).query("_smtp._tls." + d, "TXT", [self, d](sdk::Result<sdk::DnsAnswer> r) {
      std::vector<std::string> to;
      if (r && r->rcode == "NOERROR")
        for (const auto& rec : r->records)
          if (auto a = rua_addresses(rec); !a.empty()) to = a;
      if (to.empty()) {
        self->lines += d + ": no TLSRPT record with a mailto: address\n";
        return self->domain();
      }
      self->send(d, to, 0);
    });
  }

  void send(const std::string& d, const std::vector<std::string>& to, size_t i) {
    if (i == to.size()) return domain();
    auto self = shared_from_this();
    // A local address is delivered to its account; any other goes out.
    sdk::StoreClient(ctx->host, nullptr)
        .raw("store", "resolve", sdk::Record().add("address", to[i]), [self, d, to, i](sdk::Result<sdk::Record> r) {
          uint64_t account = r ? r->number("account").value_or(0) : 0;
          sdk::QueuedMessage m;
          m.sender = self->ctx->settings.tlsrpt_from;
          m.rcpts.push_back({to[i], account, "NEVER", ""});
          m.protocol = "TLSRPT";
          std::string data = report_message(m.sender, to[i], d, self->ctx->settings.helo, self->day, self->json);
          sdk::QueueClient(self->ctx->host, nullptr).enqueue(m, data, [self, d, to, i](sdk::Result<sdk::Enqueued> q) {
            self->lines += d + ": " + (q ? "queued for " + to[i] : "not queued for " + to[i] + ": " + q.error().message) + "\n";
            self->send(d, to, i + 1);
          });
        });
  }
};

}  // namespace

std::vector<std::string> rua_addresses(std::string_view record) {
  std::vector<std::string> out;
  std::string_view r = record;
  if (!r.starts_with("v=TLSRPTv1")) return out;
  while (!r.empty()) {
    size_t semi = r.find(';');
    std::string tag = trim(r.substr(0, semi));
    r = semi == std::string_view::npos ? std::string_view() : r.substr(semi + 1);
    if (!tag.starts_with("rua=")) continue;
    std::string_view list = std::string_view(tag).substr(4);
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string uri = trim(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (uri.starts_with("mailto:") && uri.find('@') != std::string::npos && uri.size() < 300 &&
          uri.find_first_of("<>\r\n \"") == std::string::npos)
        out.push_back(uri.substr(7));
    }
  }
  return out;
}

std::string report_message(const std::string& from, const std::string& to, const std::string& domain,
                           const std::string& submitter, const std::string& day, const std::string& json) {
  std::string id = day + "T00:00:00Z_" + domain;
  std::string boundary = "tlsrpt-" + day + "-" + std::to_string(json.size());
  std::string m;
  m += "From: " + from + "\r\nTo: " + to + "\r\nDate: " + sdk::rfc5322_date() + "\r\n";
  m += "Subject: Report Domain: " + domain + " Submitter: " + submitter + " Report-ID: <" + id + ">\r\n";
  m += "Message-ID: <" + id + "@" + submitter + ">\r\n";
  m += "TLS-Report-Domain: " + domain + "\r\nTLS-Report-Submitter: " + submitter + "\r\n";
  // RFC 8460 §5.3: reports must get through even where TLS is what fails.
  m += "TLS-Required: No\r\n";
  m += "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"" + boundary +
       "\"\r\n\r\n";
  m += "--" + boundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
  m += "The TLS report (RFC 8460) of " + submitter + " for mail to " + domain + " on " + day + ".\r\n\r\n";
  m += "--" + boundary + "\r\nContent-Type: application/tlsrpt+json\r\n";
  m += "Content-Disposition: attachment;\r\n\tfilename=\"" + submitter + "!" + domain + "!" + day + ".json\"\r\n\r\n";
  m += json + "\r\n--" + boundary + "--\r\n";
  return m;
}

void mail_reports(const std::shared_ptr<Context>& ctx, const std::string& day,
                  std::map<std::string, std::string> reports, std::function<void(std::string)> done) {
  auto run = std::make_shared<Run>();
  run->ctx = ctx;
  run->day = day;
  run->reports = std::move(reports);
  run->next = run->reports.begin();
  run->done = std::move(done);
  run->domain();
}

}  // namespace postern::outbound
