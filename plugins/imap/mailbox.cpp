// Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
// LIST/LSUB, STATUS, APPEND, quotas, CLOSE/UNSELECT, EXPUNGE.
#include "session.hpp"
#include "util.hpp"

#include <map>
#include <set>

namespace postern::imap {

using sdk::Record;
using sdk::Result;

namespace {

uint64_t num(const Record& r, std::string_view k) { return r.number(k).value_or(0); }

// LIST patterns: '*' matches anything, '%' anything but the delimiter.
// Iterative (no backtracking blow-up): positions of the pattern reachable
// after each character of the name.
bool matches(std::string_view pattern, std::string_view name) {
  std::vector<bool> at(pattern.size() + 1, false), next(pattern.size() + 1);
  auto close = [&](std::vector<bool>& v) {
    for (size_t p = 0; p < pattern.size(); ++p)
      if (v[p] && (pattern[p] == '*' || pattern[p] == '%')) v[p + 1] = true;
  };
  at[0] = true;
  close(at);
  for (char c : name) {
    std::fill(next.begin(), next.end(), false);
    for (size_t p = 0; p < pattern.size(); ++p) {
      if (!at[p]) continue;
      char q = pattern[p];
      if (q == '*' || (q == '%' && c != '/')) next[p] = true;
      else if (q == c) next[p + 1] = true;
    }
    close(next);
    at.swap(next);
  }
  return at[pattern.size()];
}

std::string status_code(const sdk::Error& e) {
  switch (e.status) {
    case PST_ERR_NOT_FOUND: return "[NONEXISTENT] ";
    case PST_ERR_EXISTS: return "[ALREADYEXISTS] ";
    case PST_ERR_QUOTA: return "[OVERQUOTA] ";
    case PST_ERR_DENIED: return "[NOPERM] ";
    case PST_ERR_RETRYABLE: return "[UNAVAILABLE] ";
    default: return "";
  }
}

// STATUS items answered from a message.list reply.
std::string status_items(const Record& list, const std::vector<std::string>& items) {
  uint64_t unseen = 0, deleted = 0, size = 0, messages = 0;
  for (auto raw : list.all("message")) {
    auto m = Record::parse(raw).value_or(Record());
    ++messages;
    size += num(m, "size");
    if (!has_flag(m.get_or("flags", ""), "\\Seen")) ++unseen;
    if (has_flag(m.get_or("flags", ""), "\\Deleted")) ++deleted;
  }
  std::string out;
  for (const auto& item : items) {
    uint64_t v = item == "MESSAGES" ? messages
                 : item == "UIDNEXT" ? num(list, "uidnext")
                 : item == "UIDVALIDITY" ? num(list, "uidvalidity")
                 : item == "UNSEEN" ? unseen
                 : item == "DELETED" ? deleted
                 : item == "SIZE" ? size
                 : item == "HIGHESTMODSEQ" ? num(list, "modseq")
                                           : 0;  // RECENT
    out += (out.empty() ? "" : " ") + item + " " + std::to_string(v);
  }
  return out;
}

bool valid_status_item(const std::string& item) {
  static const std::set<std::string> known{"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                                           "DELETED",  "SIZE",    "HIGHESTMODSEQ", "RECENT"};
  return known.count(item) > 0;
}

// "(A B C)" tokens from index i (an open token); advances i past ")".
std::optional<std::vector<std::string>> atom_list(const std::vector<Token>& args, size_t& i) {
  if (i >= args.size() || args[i].kind != Token::open) return std::nullopt;
  std::vector<std::string> out;
  for (++i; i < args.size() && args[i].kind != Token::close; ++i) {
    if (args[i].kind != Token::atom && args[i].kind != Token::string) return std::nullopt;
    out.push_back(upper(args[i].value));
  }
  if (i >= args.size()) return std::nullopt;
  ++i;
  return out;
}

}  // namespace

void Session::select(const std::string& tag, const Tokens& args, bool read_only) {
  auto name = args.empty() ? std::nullopt : mailbox_arg(args[0]);
  if (!name) return done(tag, "BAD", "SELECT mailbox");
  if (args.size() > 1) {
    size_t i = 1;
    auto params = atom_list(args, i);
    if (!params || i != args.size()) return done(tag, "BAD", "unknown SELECT parameters");
    for (auto& p : *params)
      if (p == "CONDSTORE") condstore_ = true;
      else return done(tag, "BAD", "unknown SELECT parameter " + p);
  }
  saved_.clear();  // RFC 5182: "$" does not survive a change of mailbox
  if (state_ == State::selected) {
    untagged("OK [CLOSED] previous mailbox closed");
    view_.reset();
    backend_.watch(0, 0, nullptr);
    state_ = State::authenticated;
  }
  wait();
  backend_.call("store", "message.list", Record().add("account", account_).add("mailbox", *name),
                [this, alive = std::weak_ptr<bool>(alive_), tag, name = *name, read_only](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    done(tag, "NO", status_code(r.error()) + "no such mailbox");
                    return resume();
                  }
                  view_ = std::make_unique<View>(name, read_only);
                  view_->update(*r, true);
                  state_ = State::selected;
                  backend_.watch(account_, view_->id(), [this, alive = std::weak_ptr<bool>(alive_)] {
                    if (alive.expired()) return;
                    changed_ = true;
                    idle_refresh();  // IDLE reports at once; otherwise the next command does
                  });
                  // A change between the listing and the watch sent no hint:
                  // look again at the next chance.
                  changed_ = true;
                  untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk $NotJunk $Forwarded)");
                  untagged("OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags allowed");
                  untagged(std::to_string(view_->size()) + " EXISTS");
                  if (!rev2_) untagged("0 RECENT");
                  untagged("OK [UIDVALIDITY " + std::to_string(view_->uidvalidity()) + "] UIDs valid");
                  untagged("OK [UIDNEXT " + std::to_string(view_->uidnext()) + "] predicted next UID");
                  untagged("OK [HIGHESTMODSEQ " + std::to_string(view_->highest_modseq()) + "] highest");
                  if (rev2_) untagged("LIST () \"/\" " + quote(name));
                  done(tag, "OK", read_only ? "[READ-ONLY] EXAMINE completed" : "[READ-WRITE] SELECT completed");
                  resume();
                });
}

void Session::create(const std::string& tag, const Tokens& args) {
  auto name = args.size() == 1 ? mailbox_arg(args[0]) : std::nullopt;
  if (!name) return done(tag, "BAD", "CREATE mailbox");
  if (*name == "INBOX") return done(tag, "NO", "[ALREADYEXISTS] INBOX always exists");
  // Parents first ("a/b/c" creates "a" and "a/b" when missing).
  auto names = std::make_shared<std::vector<std::string>>();
  for (size_t slash = name->find('/'); slash != std::string::npos; slash = name->find('/', slash + 1))
    names->push_back(name->substr(0, slash));
  names->push_back(*name);
  wait();
  auto alive = std::weak_ptr<bool>(alive_);
  auto failed = std::make_shared<bool>(false);
  Sequence::run(
      names->size(),
      [this, alive, tag, names, failed](size_t i, std::function<void()> next) {
        backend_.call("store", "mailbox.create", Record().add("account", account_).add("name", (*names)[i]),
                      [this, alive, tag, names, failed, i, next](Result<Record> r) {
                        if (alive.expired()) return;
                        bool last = i + 1 == names->size();
                        if (!r && (last || r.error().status != PST_ERR_EXISTS)) {
                          done(tag, "NO", status_code(r.error()) + r.error().message);
                          *failed = true;
                          return resume();
                        }
                        next();
                      });
      },
      [this, alive, tag, failed] {
        if (alive.expired() || *failed) return;
        finish(tag, "OK", "CREATE completed");
      });
}

void Session::remove(const std::string& tag, const Tokens& args) {
  auto name = args.size() == 1 ? mailbox_arg(args[0]) : std::nullopt;
  if (!name) return done(tag, "BAD", "DELETE mailbox");
  if (*name == "INBOX") return done(tag, "NO", "[CANNOT] INBOX cannot be deleted");
  wait();
  backend_.call("store", "mailbox.delete", Record().add("account", account_).add("name", *name),
                [this, alive = std::weak_ptr<bool>(alive_), tag](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) return finish(tag, "NO", status_code(r.error()) + r.error().message);
                  finish(tag, "OK", "DELETE completed");
                });
}

void Session::rename(const std::string& tag, const Tokens& args) {
  auto from = args.size() == 2 ? mailbox_arg(args[0]) : std::nullopt;
  auto to = args.size() == 2 ? mailbox_arg(args[1]) : std::nullopt;
  if (!from || !to) return done(tag, "BAD", "RENAME from to");
  if (*to == "INBOX") return done(tag, "NO", "[ALREADYEXISTS] INBOX exists");
  wait();
  backend_.call("store", "mailbox.rename", Record().add("account", account_).add("name", *from).add("to", *to),
                [this, alive = std::weak_ptr<bool>(alive_), tag, from = *from, to = *to](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) return finish(tag, "NO", status_code(r.error()) + r.error().message);
                  if (view_ && view_->name() == from) view_->rename(to);
                  finish(tag, "OK", "RENAME completed");
                });
}

void Session::subscribe(const std::string& tag, const Tokens& args, bool on) {
  auto name = args.size() == 1 ? mailbox_arg(args[0]) : std::nullopt;
  if (!name) return done(tag, "BAD", "SUBSCRIBE mailbox");
  wait();
  backend_.call("store", "mailbox.subscribe",
                Record().add("account", account_).add("name", *name).add("subscribed", on ? "1" : "0"),
                [this, alive = std::weak_ptr<bool>(alive_), tag, on](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) return finish(tag, "NO", status_code(r.error()) + r.error().message);
                  finish(tag, "OK", on ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
                });
}

void Session::list(const std::string& tag, const Tokens& args, bool lsub) {
  size_t i = 0;
  std::set<std::string> select_opts, return_opts;
  std::vector<std::string> status;
  if (!lsub && i < args.size() && args[i].kind == Token::open) {
    auto opts = atom_list(args, i);
    if (!opts) return done(tag, "BAD", "LIST selection options");
    select_opts.insert(opts->begin(), opts->end());
  }
  if (i + 2 > args.size() || !is_string(args[i])) return done(tag, "BAD", "LIST reference pattern");
  std::string reference = args[i++].value;
  std::vector<std::string> patterns;
  if (args[i].kind == Token::open) {
    for (++i; i < args.size() && args[i].kind != Token::close; ++i) patterns.push_back(args[i].value);
    if (i++ >= args.size()) return done(tag, "BAD", "LIST patterns");
  } else if (is_string(args[i])) {
    patterns.push_back(args[i++].value);
  } else {
    return done(tag, "BAD", "LIST pattern");
  }
  // Matching costs pattern x name: keep both sides small.
  if (patterns.size() > 32 || reference.size() > 1000 ||
      std::any_of(patterns.begin(), patterns.end(), [](auto& p) { return p.size() > 1000; }))
    return done(tag, "BAD", "[LIMIT] too many or too long LIST patterns");
  if (i < args.size()) {
    if (lsub || upper(args[i].value) != "RETURN") return done(tag, "BAD", "LIST: unexpected arguments");
    ++i;
    if (i >= args.size() || args[i].kind != Token::open) return done(tag, "BAD", "LIST RETURN options");
    for (++i; i < args.size() && args[i].kind != Token::close; ++i) {
      std::string opt = upper(args[i].value);
      if (opt == "STATUS") {
        ++i;
        auto items = atom_list(args, i);
        if (!items) return done(tag, "BAD", "LIST RETURN STATUS items");
        for (auto& item : *items)
          if (!valid_status_item(item)) return done(tag, "BAD", "unknown STATUS item " + item);
        status = *items;
        --i;
      } else {
        return_opts.insert(opt);
      }
    }
    if (i >= args.size()) return done(tag, "BAD", "LIST RETURN options");
  }
  std::string verb = lsub ? "LSUB" : "LIST";
  if (patterns.size() == 1 && patterns[0].empty()) {  // the hierarchy delimiter
    untagged(verb + " (\\Noselect) \"/\" \"\"");
    return finish(tag, "OK", verb + " completed");
  }
  bool subscribed_only = lsub || select_opts.count("SUBSCRIBED");
  bool special_only = select_opts.count("SPECIAL-USE") > 0;
  bool show_subscribed = subscribed_only || return_opts.count("SUBSCRIBED");
  wait();
  backend_.call(
      "store", "mailbox.list", Record().add("account", account_),
      [this, alive = std::weak_ptr<bool>(alive_), tag, verb, reference, patterns, subscribed_only, special_only,
       show_subscribed, status](Result<Record> r) {
        if (alive.expired()) return;
        if (!r) {
          done(tag, "NO", status_code(r.error()) + r.error().message);
          return resume();
        }
        std::vector<Record> boxes;
        std::set<std::string> names;
        for (auto raw : r->all("mailbox")) {
          boxes.push_back(Record::parse(raw).value_or(Record()));
          names.insert(std::string(boxes.back().get_or("name", "")));
        }
        auto lines = std::make_shared<std::vector<std::pair<std::string, std::string>>>();  // (line, name)
        for (const Record& b : boxes) {
          std::string name(b.get_or("name", ""));
          bool subscribed = b.get_or("subscribed", "0") == "1";
          std::string special(b.get_or("special_use", ""));
          if ((subscribed_only && !subscribed) || (special_only && special.empty())) continue;
          bool hit = false;
          for (const auto& p : patterns) {
            std::string full = canonical_mailbox(reference + p);
            hit = hit || matches(full, name) || (name == "INBOX" && matches(upper(full), "INBOX"));
          }
          if (!hit) continue;
          auto next = names.lower_bound(name + "/");
          bool children = next != names.end() && next->compare(0, name.size() + 1, name + "/") == 0;
          std::string attrs = children ? "\\HasChildren" : "\\HasNoChildren";
          if (show_subscribed && subscribed) attrs += " \\Subscribed";
          if (!special.empty()) attrs += " " + special;
          lines->emplace_back(verb + " (" + attrs + ") \"/\" " + quote(name), name);
        }
        if (status.empty()) {
          for (auto& [line, name] : *lines) untagged(line);
          return finish(tag, "OK", verb + " completed");
        }
        // LIST-STATUS (RFC 5819): each LIST line followed by its STATUS.
        Sequence::run(
            lines->size(),
            [this, alive, lines, status](size_t k, std::function<void()> next) {
              untagged((*lines)[k].first);
              std::string name = (*lines)[k].second;
              backend_.call("store", "message.list", Record().add("account", account_).add("mailbox", name),
                            [this, alive, name, status, next](Result<Record> r) {
                              if (alive.expired()) return;
                              if (r) untagged("STATUS " + quote(name) + " (" + status_items(*r, status) + ")");
                              next();
                            });
            },
            [this, alive, tag, verb] {
              if (alive.expired()) return;
              finish(tag, "OK", verb + " completed");
            });
      });
}

void Session::status(const std::string& tag, const Tokens& args) {
  auto name = args.size() >= 2 ? mailbox_arg(args[0]) : std::nullopt;
  size_t i = 1;
  auto items = name ? atom_list(args, i) : std::nullopt;
  if (!name || !items || i != args.size() || items->empty()) return done(tag, "BAD", "STATUS mailbox (items)");
  for (auto& item : *items)
    if (!valid_status_item(item)) return done(tag, "BAD", "unknown STATUS item " + item);
  wait();
  backend_.call("store", "message.list", Record().add("account", account_).add("mailbox", *name),
                [this, alive = std::weak_ptr<bool>(alive_), tag, name = *name, items = *items](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    done(tag, "NO", status_code(r.error()) + "no such mailbox");
                    return resume();
                  }
                  untagged("STATUS " + quote(name) + " (" + status_items(*r, items) + ")");
                  finish(tag, "OK", "STATUS completed");
                });
}

void Session::append(const std::string& tag, const Tokens& args) {
  auto name = args.size() >= 2 ? mailbox_arg(args[0]) : std::nullopt;
  if (!name) return done(tag, "BAD", "APPEND mailbox [(flags)] [date-time] literal");
  size_t i = 1;
  std::string flags;
  if (args[i].kind == Token::open) {
    for (++i; i < args.size() && args[i].kind != Token::close; ++i) {
      std::string f = args[i].value;
      if (args[i].kind != Token::atom || upper(f) == "\\RECENT") return done(tag, "BAD", "invalid flag " + f);
      flags += (flags.empty() ? "" : " ") + f;
    }
    if (i++ >= args.size()) return done(tag, "BAD", "APPEND flags");
  }
  uint64_t internaldate = 0;
  if (i < args.size() && args[i].kind == Token::string && !args[i].literal) {
    auto t = parse_imap_date_time(args[i].value);
    if (!t || *t < 0) return done(tag, "BAD", "invalid date-time");
    internaldate = static_cast<uint64_t>(*t);
    ++i;
  }
  if (i + 1 != args.size() || args[i].kind != Token::string || !args[i].literal)
    return done(tag, "BAD", "APPEND needs the message as a literal");
  wait();
  Record request = Record().add("account", account_).add("mailbox", *name).add("data", args[i].value).add("flags", flags);
  if (internaldate) request.add("internaldate", internaldate);
  backend_.call("store", "message.append", request,
                [this, alive = std::weak_ptr<bool>(alive_), tag](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    std::string code = r.error().status == PST_ERR_NOT_FOUND ? "[TRYCREATE] " : status_code(r.error());
                    done(tag, "NO", code + r.error().message);
                    return resume();
                  }
                  if (view_ && num(*r, "mailbox") == view_->id()) changed_ = true;
                  finish(tag, "OK",
                         "[APPENDUID " + std::to_string(num(*r, "uidvalidity")) + " " + std::to_string(num(*r, "uid")) +
                             "] APPEND completed");
                });
}

void Session::quota(const std::string& tag, const std::string& name, const Tokens& args) {
  if (name == "SETQUOTA") return done(tag, "NO", "[NOPERM] quotas are set by the administrator");
  if (args.size() != 1 || !is_string(args[0])) return done(tag, "BAD", name + " argument");
  std::string root = name == "GETQUOTA" ? args[0].value : "";
  if (name == "GETQUOTA" && !root.empty()) return done(tag, "NO", "[NONEXISTENT] no such quota root");
  wait();
  backend_.call("store", "quota.get", Record().add("account", account_),
                [this, alive = std::weak_ptr<bool>(alive_), tag, name, mailbox = args[0].value](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    done(tag, "NO", status_code(r.error()) + r.error().message);
                    return resume();
                  }
                  if (name == "GETQUOTAROOT") untagged("QUOTAROOT " + quote(canonical_mailbox(mailbox)) + " \"\"");
                  uint64_t limit = num(*r, "limit"), used = num(*r, "used");
                  // RFC 9208 STORAGE counts units of 1024 octets.
                  untagged(limit ? "QUOTA \"\" (STORAGE " + std::to_string((used + 1023) / 1024) + " " +
                                       std::to_string(limit / 1024) + ")"
                                 : "QUOTA \"\" ()");
                  finish(tag, "OK", name + " completed");
                });
}

void Session::close_mailbox(const std::string& tag, bool expunge_first) {
  auto leave = [this, tag, expunge_first] {
    saved_.clear();
    view_.reset();
    backend_.watch(0, 0, nullptr);
    state_ = State::authenticated;
    done(tag, "OK", expunge_first ? "CLOSE completed" : "UNSELECT completed");
  };
  if (!expunge_first || view_->read_only()) return leave();
  wait();
  backend_.call("store", "message.expunge", Record().add("account", account_).add("mailbox", view_->name()),
                [this, alive = std::weak_ptr<bool>(alive_), leave](Result<Record>) {
                  if (alive.expired()) return;
                  leave();  // CLOSE sends no EXPUNGE responses
                  resume();
                });
}

void Session::expunge(const std::string& tag, const Tokens& args, bool uid) {
  if (view_->read_only()) return done(tag, "NO", "[READ-ONLY] mailbox opened with EXAMINE");
  Record request = Record().add("account", account_).add("mailbox", view_->name());
  if (uid) {
    auto set = args.size() == 1 ? parse_sequence_set(args[0].value) : std::nullopt;
    if (!set) return done(tag, "BAD", "UID EXPUNGE uid-set");
    std::vector<uint64_t> uids;
    for (size_t i : view_->select(*set, true)) uids.push_back(view_->at(i).uid);
    if (uids.empty()) return finish(tag, "OK", "UID EXPUNGE completed");
    request.add("uids", compact_list(uids));
  } else if (!args.empty()) {
    return done(tag, "BAD", "EXPUNGE takes no arguments");
  }
  wait();
  backend_.call("store", "message.expunge", request,
                [this, alive = std::weak_ptr<bool>(alive_), tag](Result<Record> r) {
                  if (alive.expired()) return;
                  if (!r) {
                    done(tag, "NO", status_code(r.error()) + r.error().message);
                    return resume();
                  }
                  std::vector<std::pair<size_t, uint64_t>> gone;  // (index, uid)
                  for (auto u : r->all("uid")) {
                    uint64_t uid = 0;
                    std::from_chars(u.data(), u.data() + u.size(), uid);
                    if (auto i = view_->find_uid(uid)) gone.emplace_back(*i, uid);
                  }
                  std::sort(gone.rbegin(), gone.rend());
                  for (auto& [i, uid] : gone) {
                    untagged(std::to_string(i + 1) + " EXPUNGE");
                    view_->forget(uid);
                  }
                  finish(tag, "OK", "EXPUNGE completed");
                });
}

}  // namespace postern::imap
