// Test plugin: two pipeline filters.
//   "gate" judges every SMTP stage from its config (reject a HELO name,
//   tempfail a sender, reject a recipient, discard or quarantine by a
//   subject word, answer late, or never answer at one stage); at data_end
//   it adds a header, an Authentication-Results entry and score.
//   "sneaky" declares no mutation and tries one anyway: the host must
//   refuse it (the filter reports what happened in a header it cannot add,
//   so the test checks the header is absent and the mail still arrives).
#include <postern/sdk.hpp>

#include <array>
#include <chrono>
#include <string>

namespace gate {
using namespace postern::sdk;

constexpr uint32_t kAll = PST_STAGE_BIT(PST_STAGE_CONNECT) | PST_STAGE_BIT(PST_STAGE_HELO) |
                          PST_STAGE_BIT(PST_STAGE_MAIL_FROM) | PST_STAGE_BIT(PST_STAGE_RCPT_TO) |
                          PST_STAGE_BIT(PST_STAGE_DATA_END);

class Plugin : public postern::sdk::Plugin {
 public:
  static constexpr std::array<FilterSpec, 2> filters{
      FilterSpec{"gate", kAll, PST_FILTER_ADD_HEADER | PST_FILTER_SET_SCORE},
      FilterSpec{"sneaky", PST_STAGE_BIT(PST_STAGE_DATA_END), 0}};

  bool configure(Config cfg) override {
    cfg.allow_keys({"reject_helo", "tempfail_from", "reject_rcpt", "discard_word", "quarantine_word", "slow_ms",
                    "hang_stage", "result"});
    reject_helo_ = cfg.string("reject_helo", "");
    tempfail_from_ = cfg.string("tempfail_from", "");
    reject_rcpt_ = cfg.string("reject_rcpt", "");
    discard_word_ = cfg.string("discard_word", "");
    quarantine_word_ = cfg.string("quarantine_word", "");
    slow_ms_ = cfg.integer("slow_ms", 0, 0, 60'000);
    hang_stage_ = cfg.string("hang_stage", "");
    result_ = cfg.string("result", "gate=pass");
    return cfg.error_count() == 0;
  }

  void on_stage(std::string_view filter, pst_stage stage, FilterTxn txn, VerdictPtr verdict) override {
    if (filter == "sneaky") {
      if (txn.add_header("X-Sneaky", "the host let an undeclared mutation through")) return verdict->reject(550, "5.7.1", "sneaky", "");
      return verdict->cont();
    }
    static constexpr const char* names[] = {"connect", "helo", "auth", "mail_from", "rcpt_to", "data_headers", "data_end"};
    if (hang_stage_ == names[stage]) {
      // Answers far too late: the host's stage timeout decides, and the
      // late answer must be ignored harmlessly.
      host().start_timer(nullptr, std::chrono::seconds(2), [verdict](bool) { verdict->reject(550, "5.7.1", "late", ""); });
      return;
    }
    switch (stage) {
      case PST_STAGE_HELO:
        if (txn.get("helo") == reject_helo_) return verdict->reject(550, "5.7.1", "your HELO is not welcome", "helo");
        break;
      case PST_STAGE_MAIL_FROM:
        if (txn.get("mail_from") == tempfail_from_) return verdict->tempfail(451, "4.7.1", "try again later", "greylist");
        break;
      case PST_STAGE_RCPT_TO: {
        // The newest recipient is the last "rcpt".
        std::optional<std::string> last;
        for (size_t i = 0; auto r = txn.get("rcpt", i); ++i) last = r;
        if (last == reject_rcpt_) return verdict->reject(550, "5.7.1", "recipient refused by policy", "rcpt");
        break;
      }
      case PST_STAGE_DATA_END: {
        std::string message = txn.get("message").value_or("");
        txn.add_header("X-Gate", "checked");
        txn.add_result(result_);
        txn.add_score(5);
        if (!discard_word_.empty() && message.find(discard_word_) != std::string::npos) return verdict->discard("word");
        if (!quarantine_word_.empty() && message.find(quarantine_word_) != std::string::npos)
          return verdict->quarantine("word");
        if (slow_ms_ > 0) {  // answer later, from a timer: the asynchronous path
          host().start_timer(nullptr, std::chrono::milliseconds(slow_ms_), [verdict](bool) { verdict->cont(); });
          return;
        }
        break;
      }
      default:
        break;
    }
    verdict->cont();
  }

 private:
  std::string reject_helo_, tempfail_from_, reject_rcpt_, discard_word_, quarantine_word_, hang_stage_, result_;
  int64_t slow_ms_ = 0;
};

}  // namespace gate

POSTERN_PLUGIN(gate::Plugin, "gate", "1.0.0")
