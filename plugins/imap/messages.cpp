// Message commands that change things: STORE, COPY, MOVE (RFC 9051,
// RFC 6851, RFC 4315 UIDPLUS, RFC 7162 UNCHANGEDSINCE).
#include "session.hpp"
#include "util.hpp"

namespace postern::imap {

using sdk::Record;
using sdk::Result;

namespace {
std::string code_of(const sdk::Error& e) {
  switch (e.status) {
    case PST_ERR_NOT_FOUND: return "[TRYCREATE] ";
    case PST_ERR_QUOTA: return "[OVERQUOTA] ";
    case PST_ERR_RETRYABLE: return "[UNAVAILABLE] ";
    default: return "";
  }
}
}  // namespace

void Session::store(const std::string& tag, const Tokens& args, bool uid) {
  if (view_->read_only()) return done(tag, "NO", "[READ-ONLY] mailbox opened with EXAMINE");
  auto set = args.size() >= 3 ? parse_sequence_set(args[0].value) : std::nullopt;
  if (!set) return done(tag, "BAD", "STORE sequence-set [(UNCHANGEDSINCE n)] item flags");
  size_t i = 1;
  std::optional<uint64_t> unchanged_since;
  if (args[i].kind == Token::open) {
    if (i + 3 >= args.size() || upper(args[i + 1].value) != "UNCHANGEDSINCE" || args[i + 3].kind != Token::close)
      return done(tag, "BAD", "unknown STORE modifier");
    const std::string& n = args[i + 2].value;
    if (n.empty() || n.size() > 19 || n.find_first_not_of("0123456789") != std::string::npos)
      return done(tag, "BAD", "UNCHANGEDSINCE needs a number");
    unchanged_since = std::stoull(n);
    condstore_ = true;
    i += 4;
  }
  if (i >= args.size()) return done(tag, "BAD", "STORE item");
  std::string item = upper(args[i++].value);
  bool silent = item.ends_with(".SILENT");
  if (silent) item.resize(item.size() - 7);
  std::string mode = item == "FLAGS" ? "set" : item == "+FLAGS" ? "add" : item == "-FLAGS" ? "remove" : "";
  if (mode.empty()) return done(tag, "BAD", "STORE item must be FLAGS, +FLAGS or -FLAGS");
  std::string flags;
  bool list = i < args.size() && args[i].kind == Token::open;
  for (i += list; i < args.size() && args[i].kind != Token::close; ++i) {
    if (args[i].kind != Token::atom || upper(args[i].value) == "\\RECENT") return done(tag, "BAD", "invalid flag");
    flags += (flags.empty() ? "" : " ") + args[i].value;
  }
  if (list && i >= args.size()) return done(tag, "BAD", "unterminated flag list");
  if (set->saved) {
    set = set_of(saved_);
    uid = true;
  }
  std::vector<uint64_t> uids;
  for (size_t index : view_->select(*set, uid)) uids.push_back(view_->at(index).uid);
  if (uids.empty()) return finish(tag, "OK", "STORE completed", false);
  Record request =
      Record().add("account", account_).add("mailbox", view_->name()).add("uids", compact_list(uids)).add("mode", mode).add("flags", flags);
  if (unchanged_since) request.add("unchanged_since", *unchanged_since);
  wait();
  backend_.call("store", "message.flags", request,
                [this, alive = std::weak_ptr<bool>(alive_), tag, uid, silent](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    done(tag, "NO", code_of(r.error()) + r.error().message);
                    return resume();
                  }
                  for (auto raw : r->all("message")) {
                    auto m = Record::parse(raw).value_or(Record());
                    uint64_t u = m.number("uid").value_or(0), modseq = m.number("modseq").value_or(0);
                    view_->set_flags(u, std::string(m.get_or("flags", "")), modseq);
                    auto index = view_->find_uid(u);
                    if (!index || (silent && !condstore_)) continue;
                    std::string items;
                    if (uid) items += "UID " + std::to_string(u) + " ";
                    if (!silent) items += "FLAGS " + flag_list(m.get_or("flags", "")) + " ";
                    if (condstore_) items += "MODSEQ (" + std::to_string(modseq) + ") ";
                    items.pop_back();
                    untagged(std::to_string(*index + 1) + " FETCH (" + items + ")");
                  }
                  std::vector<uint64_t> modified;
                  for (auto raw : r->all("modified")) {
                    uint64_t u = std::stoull(std::string(raw));
                    if (uid) modified.push_back(u);
                    else if (auto index = view_->find_uid(u)) modified.push_back(*index + 1);
                  }
                  std::string code = modified.empty() ? "" : "[MODIFIED " + compact_set(modified) + "] ";
                  finish(tag, "OK", code + (modified.empty() ? "STORE completed" : "conditional STORE failed"), false);
                });
}

void Session::copy(const std::string& tag, const Tokens& args, bool uid, bool move) {
  std::string verb = move ? "MOVE" : "COPY";
  if (move && view_->read_only()) return done(tag, "NO", "[READ-ONLY] mailbox opened with EXAMINE");
  auto set = args.size() == 2 ? parse_sequence_set(args[0].value) : std::nullopt;
  auto target = args.size() == 2 ? mailbox_arg(args[1]) : std::nullopt;
  if (!set || !target) return done(tag, "BAD", verb + " sequence-set mailbox");
  if (set->saved) {
    set = set_of(saved_);
    uid = true;
  }
  std::string to = *target;
  std::vector<uint64_t> uids;
  for (size_t index : view_->select(*set, uid)) uids.push_back(view_->at(index).uid);
  if (uids.empty()) return finish(tag, "OK", verb + " completed (nothing to " + verb + ")");
  wait();
  auto alive = std::weak_ptr<bool>(alive_);
  backend_.call(
      "store", move ? "message.move" : "message.copy",
      Record().add("account", account_).add("mailbox", view_->name()).add("uids", compact_list(uids)).add("to", to),
      [this, alive, tag, verb, move](Result<Record> r) {
        if (alive.expired()) return;
        if (!r) {
          done(tag, "NO", code_of(r.error()) + r.error().message);
          return resume();
        }
        // RFC 4315: the two sets pair up in order, so both are listed by
        // source UID, as they are.
        std::vector<std::pair<uint64_t, uint64_t>> pairs;
        for (auto raw : r->all("copy")) {
          auto c = Record::parse(raw).value_or(Record());
          pairs.emplace_back(c.number("from").value_or(0), c.number("to").value_or(0));
        }
        std::sort(pairs.begin(), pairs.end());
        std::string from, dest;
        for (auto& [f, d] : pairs) {
          from += (from.empty() ? "" : ",") + std::to_string(f);
          dest += (dest.empty() ? "" : ",") + std::to_string(d);
        }
        std::string copyuid =
            pairs.empty() ? "" : "[COPYUID " + std::string(r->get_or("uidvalidity", "0")) + " " + from + " " + dest + "] ";
        if (!move) return finish(tag, "OK", copyuid + "COPY completed");
        // MOVE (RFC 6851 §3.3): COPYUID first, then the EXPUNGEs, then OK.
        untagged("OK " + copyuid + "moved");
        std::vector<std::pair<size_t, uint64_t>> gone;
        for (auto& [f, d] : pairs)
          if (auto index = view_->find_uid(f)) gone.emplace_back(*index, f);
        std::sort(gone.rbegin(), gone.rend());
        for (auto& [index, u] : gone) {
          untagged(std::to_string(index + 1) + " EXPUNGE");
          view_->forget(u);
        }
        finish(tag, "OK", "MOVE completed");
      });
}

}  // namespace postern::imap
