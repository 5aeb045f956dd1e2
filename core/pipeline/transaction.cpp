#include "pipeline/transaction.hpp"

#include "log/logger.hpp"
#include "net/connection.hpp"
#include "plugin/generation.hpp"
#include "plugin/host_context.hpp"

#include <boost/asio/post.hpp>

#include <utility>

namespace postern::core {
namespace asio = boost::asio;

namespace {
constexpr std::string_view kStages[] = {"connect", "helo",     "auth",   "mail_from", "rcpt_to",
                                        "data_headers", "data_end", "queued", "outbound"};
constexpr std::string_view kVerdicts[] = {"continue", "accept", "reject", "tempfail", "discard", "quarantine", "hold"};
// Fields the host fills; a protocol cannot overwrite them.
constexpr std::string_view kHostFields[] = {"peer",        "peer_port",   "listener",    "tls_version",      "tls_cipher",
                                            "add_header",  "authentication_results",           "score",
                                            "message_replaced", "rcpt_changes"};
constexpr size_t kMaxRcptChanges = 1000;
constexpr size_t kMaxFieldValue = size_t{4} << 30;  // the message itself is a field
constexpr size_t kMaxHeaders = 64;

bool same_address(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view sv(pst_str s) { return s.data ? std::string_view(s.data, s.len) : std::string_view(); }

// Header names and values must not smuggle a line break into the message.
bool clean(std::string_view s, bool name) {
  for (unsigned char c : s)
    if (c == '\r' || c == '\n' || c == 0 || (name && (c <= ' ' || c == ':' || c >= 0x7f))) return false;
  return !s.empty() || !name;
}

// What a filter says reaches the SMTP client: one printable line, a code
// of the verdict's class, an enhanced code that matches it.
void sanitise(uint32_t kind, uint16_t& code, std::string& enhanced, std::string& text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (text.size() > 400) text.resize(400);
  if (kind == PST_VERDICT_REJECT && (code < 500 || code > 599)) code = 0;
  if (kind == PST_VERDICT_TEMPFAIL && (code < 400 || code > 499 || code == 421)) code = 0;
  bool ok = enhanced.size() >= 5 && enhanced.size() <= 9 && enhanced[1] == '.' &&
            enhanced[0] == (kind == PST_VERDICT_REJECT ? '5' : '4');
  for (size_t i = 2; ok && i < enhanced.size(); ++i)
    ok = std::isdigit(static_cast<unsigned char>(enhanced[i])) || enhanced[i] == '.';
  if (!ok) enhanced.clear();
}
}  // namespace

std::string_view stage_name(pst_stage s) {
  return static_cast<size_t>(s) < std::size(kStages) ? kStages[s] : "unknown";
}

Transaction::Transaction(HostContext* protocol, std::weak_ptr<Connection> conn, asio::any_io_executor executor,
                         uint64_t conn_id, std::vector<FilterBinding> filters, PipelineSettings settings)
    : pst_txn(pst_txn::transaction), protocol_(protocol), conn_(std::move(conn)), executor_(std::move(executor)),
      conn_id_(conn_id), filters_(std::move(filters)), settings_(settings) {
  bound_ = !conn_.expired();
}

pst_status Transaction::set(std::string_view field, std::string_view value) {
  if (field.empty() || value.size() > kMaxFieldValue) return PST_ERR_INVALID;
  for (std::string_view h : kHostFields)
    if (h == field) return PST_ERR_INVALID;
  std::lock_guard lock(mutex_);
  std::string key(field);
  if (field != "rcpt") {
    auto range = fields_.equal_range(key);
    for (auto it = range.first; it != range.second; ++it) replaced_.push_back(it->second);
    fields_.erase(key);
  }
  fields_.emplace(std::move(key), std::make_shared<const std::string>(value));
  return PST_OK;
}

void Transaction::set_host_field(std::string_view field, std::string_view value) {
  std::lock_guard lock(mutex_);
  std::string key(field);
  auto range = fields_.equal_range(key);
  for (auto it = range.first; it != range.second; ++it) replaced_.push_back(it->second);
  fields_.erase(key);
  fields_.emplace(std::move(key), std::make_shared<const std::string>(value));
}

pst_status Transaction::get(std::string_view field, size_t index, pst_str* out) {
  std::lock_guard lock(mutex_);
  const std::string* value = nullptr;
  if (field == "add_header") {
    if (index < headers_.size()) value = &headers_[index];
  } else if (field == "authentication_results" && index == 0 && !results_.empty()) {
    // Only when a filter authenticated something (RFC 8601 §2.2).
    auto id = fields_.find("authserv_id");
    std::string ar = id == fields_.end() ? std::string("localhost") : *id->second;
    for (const auto& r : results_) ar += ";\r\n\t" + r;
    value = &assembled_.emplace_back(std::move(ar));  // kept: a caller may still be copying an older one
  } else if (field == "score" && index == 0) {
    value = &assembled_.emplace_back(std::to_string(score_));
  } else {
    auto range = fields_.equal_range(std::string(field));
    for (auto it = range.first; it != range.second; ++it)
      if (index-- == 0) {
        value = it->second.get();
        break;
      }
  }
  if (!value) return PST_ERR_NOT_FOUND;
  *out = pst_str{value->data(), value->size()};
  return PST_OK;
}

bool Transaction::allowed(const Ask& ask, uint32_t action) const {
  if (!running_ || ask.attempt != attempt_ || current_ != ask.filter) return false;
  if (filters_[ask.filter].table->actions & action) return true;
  // The filter's own stage asked for an action its table did not declare:
  // a plugin bug its author would otherwise find only by the missing header.
  // Once per transaction, so a filter calling in a loop cannot flood the log.
  if (std::exchange(undeclared_logged_, true)) return false;
  log_warning("pipeline.undeclared_action",
              {{"filter", filters_[ask.filter].name},
               {"action", action == PST_FILTER_SET_SCORE      ? "set_score"
                          : action == PST_FILTER_REPLACE_BODY ? "replace_message"
                          : action == PST_FILTER_CHANGE_RCPT  ? "change_rcpt"
                                                              : "add_header"}});
  return false;
}

pst_status Transaction::add_header(const Ask& ask, std::string_view name, std::string_view value) {
  if (!clean(name, true) || !clean(value, false) || name.size() > 100 || value.size() > 900) return PST_ERR_INVALID;
  std::lock_guard lock(mutex_);
  if (!allowed(ask, PST_FILTER_ADD_HEADER)) return PST_ERR_UNSUPPORTED;
  if (headers_.size() >= kMaxHeaders) return PST_ERR_LIMIT;
  headers_.push_back(std::string(name) + ": " + std::string(value));
  return PST_OK;
}

pst_status Transaction::add_result(const Ask& ask, std::string_view result) {
  if (!clean(result, false) || result.empty() || result.size() > 900) return PST_ERR_INVALID;
  std::lock_guard lock(mutex_);
  if (!allowed(ask, PST_FILTER_ADD_HEADER)) return PST_ERR_UNSUPPORTED;
  if (results_.size() >= kMaxHeaders) return PST_ERR_LIMIT;
  results_.emplace_back(result);
  return PST_OK;
}

pst_status Transaction::add_score(const Ask& ask, int32_t delta) {
  std::lock_guard lock(mutex_);
  if (!allowed(ask, PST_FILTER_SET_SCORE)) return PST_ERR_UNSUPPORTED;
  score_ += delta;
  return PST_OK;
}

pst_status Transaction::replace_message(const Ask& ask, std::string_view message) {
  if (message.empty() || message.size() > kMaxFieldValue) return PST_ERR_INVALID;
  std::lock_guard lock(mutex_);
  if (stage_ != PST_STAGE_DATA_END || !fields_.count("message")) return PST_ERR_INVALID;
  if (!allowed(ask, PST_FILTER_REPLACE_BODY)) return PST_ERR_UNSUPPORTED;
  auto range = fields_.equal_range("message");
  for (auto it = range.first; it != range.second; ++it) replaced_.push_back(it->second);  // a filter may still read it
  fields_.erase("message");
  fields_.emplace("message", std::make_shared<const std::string>(message));
  if (!fields_.count("message_replaced")) fields_.emplace("message_replaced", std::make_shared<const std::string>("1"));
  return PST_OK;
}

pst_status Transaction::change_rcpt(const Ask& ask, std::string_view address, bool add) {
  if (address.empty() || address.size() > 512 || !clean(address, false)) return PST_ERR_INVALID;
  std::lock_guard lock(mutex_);
  if (stage_ != PST_STAGE_DATA_END) return PST_ERR_INVALID;
  if (!allowed(ask, PST_FILTER_CHANGE_RCPT)) return PST_ERR_UNSUPPORTED;
  if (fields_.count("rcpt_changes") >= kMaxRcptChanges) return PST_ERR_LIMIT;
  if (add) {
    fields_.emplace("rcpt", std::make_shared<const std::string>(address));
  } else {
    auto range = fields_.equal_range("rcpt");
    for (auto it = range.first; it != range.second;) {
      if (same_address(*it->second, address)) {
        replaced_.push_back(it->second);
        it = fields_.erase(it);
      } else {
        ++it;
      }
    }
  }
  fields_.emplace("rcpt_changes", std::make_shared<const std::string>((add ? "+" : "-") + std::string(address)));
  return PST_OK;
}

void Transaction::refresh_host_fields() {
  auto live = conn_.lock();
  if (!live) return;
  set_host_field("tls_version", live->tls_version());  // STARTTLS may have happened since begin
  set_host_field("tls_cipher", live->tls_cipher());
}

pst_status Transaction::run(pst_stage stage, pst_stage_done_fn done, void* user) {
  if (!done || static_cast<unsigned>(stage) >= PST_STAGE_COUNT) return PST_ERR_INVALID;
  if (running_ || ended_) return PST_ERR_INVALID;
  // done is the protocol plugin's code: its generation stays loaded until
  // done has returned.
  if (protocol_ && !protocol_->begin_job()) return PST_ERR_CLOSED;
  running_ = true;
  stage_ = stage;
  index_ = 0;
  disposition_ = Verdict{};
  done_ = done;
  user_ = user;
  refresh_host_fields();
  // Never answer inside the caller's call: post, like every completion.
  asio::post(executor_, [self = shared_from_this()] { self->next(); });
  return PST_OK;
}

// The host's pst_filter_done_fn: one filter's answer, from any thread.
void Transaction::answered(Ask* raw, const pst_verdict_v1* v) {
  std::unique_ptr<Ask> ask(raw);
  Verdict copy;
  if (v) {
    copy.kind = v->kind;
    copy.code = v->code;
    copy.enhanced = std::string(sv(v->enhanced));
    copy.text = std::string(sv(v->text));
    copy.reason = std::string(sv(v->reason));
  } else {
    copy.kind = PST_VERDICT_TEMPFAIL;
    copy.reason = "filter answered without a verdict";
  }
  auto txn = ask->txn;
  asio::post(txn->executor_, [txn, attempt = ask->attempt, copy = std::move(copy)]() mutable {
    bool current;
    {
      std::lock_guard lock(txn->mutex_);
      current = attempt == txn->attempt_ && txn->current_ != SIZE_MAX;
    }
    if (current) txn->settle(std::move(copy), true);  // a late answer changes nothing
  });
}

void Transaction::next() {
  auto live = conn_.lock();
  if (ended_ || (bound_ && (!live || !live->open()))) return finish(Verdict{});  // nobody waits for the rest
  while (index_ < filters_.size() && !(filters_[index_].table->stages & PST_STAGE_BIT(stage_))) ++index_;
  if (index_ == filters_.size()) return finish(std::move(disposition_));
  uint64_t attempt;
  {
    std::lock_guard lock(mutex_);
    current_ = index_++;
    attempt = ++attempt_;
  }
  const FilterBinding& f = filters_[current_];
  pst_verdict_v1 verdict{};
  verdict.struct_size = sizeof verdict;
  auto* ask = new Ask(shared_from_this(), attempt, current_);
  pst_status st = f.table->on_stage(f.generation->instance(), ask, stage_,
                                    [](pst_txn* t, const pst_verdict_v1* v) {
                                      if (t && t->kind == pst_txn::ask) Transaction::answered(static_cast<Ask*>(t), v);
                                    },
                                    &verdict);
  if (st == PST_PENDING) {
    timer_ = std::make_unique<asio::steady_timer>(executor_, settings_.stage_timeout);
    timer_->async_wait([self = shared_from_this(), attempt](const boost::system::error_code& ec) {
      if (ec) return;
      {
        std::lock_guard lock(self->mutex_);
        if (attempt != self->attempt_ || self->current_ == SIZE_MAX) return;
      }
      Verdict v;
      v.kind = self->settings_.fail_open ? PST_VERDICT_CONTINUE : PST_VERDICT_TEMPFAIL;
      v.reason = "timeout";
      self->settle(std::move(v), false);
    });
    return;
  }
  delete ask;  // answered by the return value: the handle is the host's again
  Verdict v;
  if (st == PST_OK) {
    v.kind = verdict.kind;
    v.code = verdict.code;
    v.enhanced = std::string(sv(verdict.enhanced));
    v.text = std::string(sv(verdict.text));
    v.reason = std::string(sv(verdict.reason));
  } else {
    // A filter that fails gets a temporary failure, never a silent accept.
    v.kind = PST_VERDICT_TEMPFAIL;
    v.reason = "filter error " + std::to_string(st);
  }
  settle(std::move(v), true);
}

void Transaction::settle(Verdict v, bool from_filter) {
  if (timer_) timer_->cancel();
  size_t filter;
  {
    std::lock_guard lock(mutex_);
    filter = current_;
    current_ = SIZE_MAX;
  }
  if (v.kind > PST_VERDICT_HOLD) v.kind = PST_VERDICT_TEMPFAIL;
  sanitise(v.kind, v.code, v.enhanced, v.text);
  {
    std::lock_guard lock(mutex_);
    log_.push_back(filters_[filter].name + ":" + std::string(stage_name(stage_)) + "=" +
                   std::string(kVerdicts[v.kind]) + (from_filter ? "" : "(" + v.reason + ")"));
  }
  if (v.kind == PST_VERDICT_CONTINUE) return next();
  // Junk, discard and hold decide where the message goes, not whether the
  // others look at it: a virus scanner after DMARC's "quarantine" still runs.
  if (v.kind == PST_VERDICT_QUARANTINE || v.kind == PST_VERDICT_DISCARD || v.kind == PST_VERDICT_HOLD) {
    auto rank = [](uint32_t k) { return k == PST_VERDICT_HOLD ? 3 : k == PST_VERDICT_DISCARD ? 2 : k == PST_VERDICT_QUARANTINE ? 1 : 0; };
    if (rank(v.kind) > rank(disposition_.kind)) disposition_ = std::move(v);
    return next();
  }
  if (v.kind == PST_VERDICT_ACCEPT) return finish(std::move(disposition_));  // skip the rest of this stage
  if (v.kind == PST_VERDICT_TEMPFAIL && v.text.empty()) v.text = "temporary failure, try again later";
  finish(std::move(v));
}

void Transaction::finish(Verdict v) {
  running_ = false;
  pst_verdict_v1 out{};
  out.struct_size = sizeof out;
  out.kind = v.kind;
  out.code = v.code;
  out.enhanced = pst_str{v.enhanced.data(), v.enhanced.size()};
  out.text = pst_str{v.text.data(), v.text.size()};
  out.reason = pst_str{v.reason.data(), v.reason.size()};
  auto live = conn_.lock();
  // NULL tells the protocol its connection is gone (free, touch nothing).
  done_(user_, !bound_ || (live && live->open()) ? &out : nullptr);
  if (log_pending_) write_log();
  if (protocol_) protocol_->end_job();  // after this, the protocol may be unloaded
}

void Transaction::write_log() {
  log_pending_ = false;
  std::string verdicts, score;
  {
    std::lock_guard lock(mutex_);
    for (const auto& l : log_) verdicts += (verdicts.empty() ? "" : ",") + l;
    score = std::to_string(score_);
  }
  if (!verdicts.empty())
    log_info("pipeline.transaction", {{"conn", std::to_string(conn_id_)}, {"verdicts", verdicts}, {"score", score}});
}

void Transaction::end_on_its_thread() {
  if (bound_) return end();
  boost::asio::post(executor_, [self = self_] {
    if (self) self->end();
  });
}

void Transaction::end() {
  ended_ = true;
  if (running_) log_pending_ = true;  // the stage's last verdicts belong in the line
  else write_log();
  self_.reset();  // asks still out keep the transaction until they answer
}

}  // namespace postern::core
