// outbound: the transport for remote recipients (service "transport",
// method "deliver", see sdk/include/postern/transport.hpp). Mail goes to a
// smart host when one is configured for the domain (or for all), else to
// the domain's MX hosts, over TLS checked by DANE or MTA-STS where the
// destination publishes them, opportunistic TLS otherwise. Connections are
// opened through the host (conn_connect, ABI 1.4) and kept for the next
// message to the same destination. TLS outcomes go into TLS-RPT logs;
// `postern tlsrpt report` prints a day's reports ("admin.tlsrpt").
#include "context.hpp"
#include "delivery.hpp"
#include "report_mail.hpp"

#include <postern/dns.hpp>
#include <postern/sdk.hpp>

#include <array>
#include <memory>

namespace postern::outbound {
namespace {

using namespace postern::sdk;

class Plugin : public sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 2> services{"transport", "admin.tlsrpt"};

  bool configure(Config cfg) override { return read_settings(cfg, settings_); }

  bool start(std::string&) override {
    ctx_ = std::make_shared<Context>(host(), settings_, host().data_dir());
    check_resolver();
    daily();
    return true;
  }

  void stop() override {
    stopped_ = true;
    if (timer_) host().cancel_timer(*timer_);
    if (ctx_) ctx_->pool.close_all();
  }

  void handle_call(std::string_view service, std::string_view method, std::string_view request,
                   ReplyPtr reply) override {
    auto r = Record::parse(request);
    if (!r) return reply->error(PST_ERR_INVALID, "malformed request");
    if (service == "admin.tlsrpt" && method == "tlsrpt.send") return send_reports(*r, reply);
    if (service == "admin.tlsrpt") return report(method, *r, reply);
    if (service != "transport" || method != "deliver") return reply->error(PST_ERR_UNSUPPORTED, "no such method");
    auto message = transport::parse_request(*r);
    if (message.domain.empty() || message.rcpts.empty()) return reply->error(PST_ERR_INVALID, "no domain or recipients");
    auto deadline = std::chrono::milliseconds(r->number("deadline_ms").value_or(300'000));
    std::make_shared<Delivery>(ctx_, std::move(message), reply, deadline)->start();
  }

 private:
  // DANE trusts the resolver's AD bit; a resolver that does not validate
  // sets none, and DANE would silently never apply. Said loudly at start
  // (and DANE stays off), rather than deferring all mail.
  void check_resolver() {
    if (!settings_.dane) return;
    auto ctx = ctx_;
    DnsClient(host(), nullptr).query(settings_.dane_check_name, "TXT", [ctx](Result<DnsAnswer> r) {
      bool ok = r && r->authenticated;
      ctx->dane_usable = ok;
      if (ok) ctx->host.info("outbound.dane_ready", {{"resolver", "validating"}});
      else
        ctx->host.error("outbound.dane_unavailable",
                        {{"reason", "the resolver did not authenticate " + ctx->settings.dane_check_name +
                                        " (no AD bit): DANE is off; point [dns] servers at a validating resolver"}});
    });
  }

  // Hourly: yesterday's reports mailed once (a marker remembers), and logs
  // older than two months dropped.
  void daily() {
    if (stopped_) return;
    std::string day = TlsReport::yesterday();
    bool due = settings_.tlsrpt_send && !ctx_->reports.mailed(day);
    auto ctx = ctx_;
    with_reports(day, "", due, [ctx, day](std::map<std::string, std::string> reports) {
      if (reports.empty()) return;
      mail_reports(ctx, day, std::move(reports), [ctx, day](std::string summary) {
        ctx->reports.mark_mailed(day);
        ctx->host.info("tlsrpt.mailed", {{"day", day}, {"summary", summary}});
      });
    }, [] {});
    timer_ = host().start_timer(nullptr, std::chrono::hours(1), [this](bool fired) {
      if (fired) daily();
    });
  }

  // `postern tlsrpt send [--date DAY]`: mails that day's reports now.
  void send_reports(const Record& r, const ReplyPtr& reply) {
    std::string day(r.get_or("date", ""));
    if (day.empty()) day = TlsReport::today();
    auto ctx = ctx_;
    with_reports(day, "", true, [ctx, day, reply](std::map<std::string, std::string> reports) {
      if (reports.empty()) return reply->error(PST_ERR_NOT_FOUND, "no TLS sessions recorded on " + day);
      mail_reports(ctx, day, std::move(reports), [ctx, day, reply](std::string summary) {
        ctx->reports.mark_mailed(day);
        reply->ok(summary);
      });
    }, [reply] { reply->error(PST_ERR_RETRYABLE, "the server is busy; try again"); });
  }

  // A day's reports are read from its log on a worker (the log may be
  // large), with old logs pruned first; then use(reports) on a loop
  // thread, or busy() when no worker took it. build = false: use({}).
  void with_reports(const std::string& day, const std::string& only, bool build,
                    std::function<void(std::map<std::string, std::string>)> use, std::function<void()> busy) {
    auto ctx = ctx_;
    auto out = std::make_shared<std::map<std::string, std::string>>();
    bool queued = host().submit(
        nullptr,
        [ctx, day, only, build, out] {
          ctx->reports.prune(62);
          if (build) *out = ctx->reports.reports(day, only, ctx->settings.helo);
        },
        [out, use, busy](bool ran) {
          if (ran) use(std::move(*out));
          else busy();
        });
    if (!queued) busy();
  }

  // `postern tlsrpt report [--date DAY] [--domain D]`: one JSON report
  // per line, per policy domain with sessions that day.
  void report(std::string_view method, const Record& r, const ReplyPtr& reply) {
    if (method != "tlsrpt.report") return reply->error(PST_ERR_UNSUPPORTED, "tlsrpt: report [--date D] [--domain D]");
    std::string day(r.get_or("date", ""));
    if (day.empty()) day = TlsReport::today();
    with_reports(day, std::string(r.get_or("domain", "")), true, [reply](std::map<std::string, std::string> reports) {
      std::string out;
      for (const auto& [domain, json] : reports) out += json + "\n";
      if (out.empty()) return reply->error(PST_ERR_NOT_FOUND, "no TLS sessions recorded for that day and domain");
      reply->ok(out);
    }, [reply] { reply->error(PST_ERR_RETRYABLE, "the server is busy; try again"); });
  }

  Settings settings_;
  std::shared_ptr<Context> ctx_;
  std::optional<uint64_t> timer_;
  std::atomic<bool> stopped_{false};
};

}  // namespace
}  // namespace postern::outbound

POSTERN_PLUGIN(postern::outbound::Plugin, "outbound", "1.0.0")
