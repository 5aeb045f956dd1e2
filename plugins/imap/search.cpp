// SEARCH (RFC 9051 §6.4.4) with ESEARCH results (RFC 4731), SAVE and "$"
// (RFC 5182), and MODSEQ (RFC 7162). Header and text keys match UTF-8
// case-insensitively over decoded text (RFC 2047 words, transfer
// encodings and charsets undone by the SDK's MIME parser).
#include "session.hpp"
#include "util.hpp"

#include <postern/mime.hpp>

#include <set>

namespace postern::imap {

using sdk::Record;
using sdk::Result;
namespace mime = sdk::mime;

namespace {

struct Key {
  enum Op {
    all, flag, no_flag, sequence, uid_set, larger, smaller, before, on, since, sent_before, sent_on, sent_since,
    header, body, text, not_, or_, and_, modseq, none,
  } op = all;
  std::string a, b;  // flag name; header name and value; text
  uint64_t n = 0;
  int64_t day = 0;
  SequenceSet set;
  std::vector<Key> kids;
};

struct Parser {
  const std::vector<Token>& t;
  size_t i = 0;
  const std::vector<uint64_t>& saved;
  std::string error;

  bool more() const { return i < t.size() && t[i].kind != Token::close; }
  // Search strings are folded and matched once per message: bounded.
  std::optional<std::string> word() {
    if (i >= t.size() || (t[i].kind != Token::atom && t[i].kind != Token::string) || t[i].value.size() > 1000)
      return std::nullopt;
    return t[i++].value;
  }
  std::optional<Key> key(int depth) {
    if (depth > 64 || i >= t.size()) return std::nullopt;
    if (t[i].kind == Token::open) {
      ++i;
      Key k{Key::and_};
      while (more()) {
        auto kid = key(depth + 1);
        if (!kid) return std::nullopt;
        k.kids.push_back(std::move(*kid));
      }
      if (i >= t.size() || k.kids.empty()) return std::nullopt;
      ++i;
      return k;
    }
    if (t[i].kind != Token::atom) return std::nullopt;
    std::string name = upper(t[i].value);
    if (name == "$" || std::isdigit(static_cast<unsigned char>(name[0])) || name[0] == '*') {
      auto s = parse_sequence_set(t[i++].value);
      if (!s) return std::nullopt;
      Key k{Key::sequence};
      k.set = *s;
      if (s->saved) {  // "$": the saved UIDs
        k.op = saved.empty() ? Key::none : Key::uid_set;
        k.set = set_of(saved);
      }
      return k;
    }
    ++i;
    static const std::pair<const char*, const char*> kFlags[] = {
        {"ANSWERED", "\\Answered"}, {"DELETED", "\\Deleted"}, {"DRAFT", "\\Draft"}, {"FLAGGED", "\\Flagged"},
        {"SEEN", "\\Seen"}};
    for (auto [word, flag] : kFlags) {
      if (name == word) return Key{Key::flag, flag};
      if (name == std::string("UN") + word) return Key{Key::no_flag, flag};
    }
    if (name == "ALL") return Key{Key::all};
    if (name == "NEW" || name == "RECENT") return Key{Key::none};  // no \Recent here
    if (name == "OLD") return Key{Key::all};
    if (name == "KEYWORD" || name == "UNKEYWORD") {
      auto w = word();
      if (!w) return std::nullopt;
      return Key{name == "KEYWORD" ? Key::flag : Key::no_flag, *w};
    }
    if (name == "LARGER" || name == "SMALLER" || name == "MODSEQ") {
      if (name == "MODSEQ" && i + 1 < t.size() && t[i].kind == Token::string) i += 2;  // entry name and type
      auto w = word();
      if (!w || w->empty() || w->size() > 19 || w->find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
      Key k{name == "LARGER" ? Key::larger : name == "SMALLER" ? Key::smaller : Key::modseq};
      k.n = std::stoull(*w);
      return k;
    }
    static const std::pair<const char*, Key::Op> kDates[] = {
        {"BEFORE", Key::before},           {"ON", Key::on},           {"SINCE", Key::since},
        {"SENTBEFORE", Key::sent_before}, {"SENTON", Key::sent_on}, {"SENTSINCE", Key::sent_since}};
    for (auto [word_name, op] : kDates) {
      if (name != word_name) continue;
      auto w = word();
      auto d = w ? parse_imap_date(*w) : std::nullopt;
      if (!d) return std::nullopt;
      Key k{op};
      k.day = *d;
      return k;
    }
    static const char* kHeaders[] = {"FROM", "TO", "CC", "BCC", "SUBJECT"};
    for (const char* h : kHeaders)
      if (name == h) {
        auto w = word();
        if (!w) return std::nullopt;
        return Key{Key::header, h, *w};
      }
    if (name == "HEADER") {
      auto field = word();
      auto value = field ? word() : std::nullopt;
      if (!value) return std::nullopt;
      return Key{Key::header, upper(*field), *value};
    }
    if (name == "BODY" || name == "TEXT") {
      auto w = word();
      if (!w) return std::nullopt;
      return Key{name == "BODY" ? Key::body : Key::text, *w};
    }
    if (name == "UID") {
      auto w = word();
      auto s = w ? parse_sequence_set(*w) : std::nullopt;
      if (!s) return std::nullopt;
      Key k{Key::uid_set};
      k.set = *s;
      if (s->saved) {
        k.set = set_of(saved);
        if (saved.empty()) k.op = Key::none;
      }
      return k;
    }
    if (name == "NOT") {
      auto kid = key(depth + 1);
      if (!kid) return std::nullopt;
      Key k{Key::not_};
      k.kids.push_back(std::move(*kid));
      return k;
    }
    if (name == "OR") {
      auto x = key(depth + 1);
      auto y = x ? key(depth + 1) : std::nullopt;
      if (!y) return std::nullopt;
      Key k{Key::or_};
      k.kids.push_back(std::move(*x));
      k.kids.push_back(std::move(*y));
      return k;
    }
    error = "unknown search key " + name;
    return std::nullopt;
  }
};

bool needs(const Key& k, bool body) {
  if (body ? (k.op == Key::body || k.op == Key::text)
           : (k.op == Key::header || k.op == Key::sent_before || k.op == Key::sent_on || k.op == Key::sent_since))
    return true;
  return std::any_of(k.kids.begin(), k.kids.end(), [&](const Key& kid) { return needs(kid, body); });
}

// One message, with what the keys need of it read lazily.
struct Candidate {
  size_t index = 0;
  const MessageRef* ref = nullptr;
  uint64_t seq = 0, star_seq = 0, star_uid = 0;
  const std::string* data = nullptr;
  std::optional<mime::Part> root;
  std::optional<std::string> text;  // decoded body text

  const mime::Part& part() {
    if (!root) root = mime::parse(*data);
    return *root;
  }
  const std::string& body_text() {
    if (!text) text = mime::body_text(*data, part());
    return *text;
  }
  bool header_has(const std::string& name, const std::string& value) {
    for (const auto& h : part().headers) {
      if (upper(h.name) != name) continue;
      if (value.empty() || mime::contains_folded(mime::decode_words(h.value), value)) return true;
    }
    return false;
  }
  bool headers_text_has(const std::string& value) {
    for (const auto& h : part().headers)
      if (mime::contains_folded(h.name + ": " + mime::decode_words(h.value), value)) return true;
    return false;
  }
  std::optional<int64_t> sent_day() {
    auto d = mime::find_header(part().headers, "Date");
    return d ? header_date_days(*d) : std::nullopt;
  }
};

bool matches(const Key& k, Candidate& c) {
  int64_t day = static_cast<int64_t>(c.ref->internaldate / 86400);
  switch (k.op) {
    case Key::all: return true;
    case Key::none: return false;
    case Key::flag: return has_flag(c.ref->flags, k.a);
    case Key::no_flag: return !has_flag(c.ref->flags, k.a);
    case Key::sequence: return k.set.contains(c.seq, c.star_seq);
    case Key::uid_set: return k.set.contains(c.ref->uid, c.star_uid);
    case Key::larger: return c.ref->size > k.n;
    case Key::smaller: return c.ref->size < k.n;
    case Key::modseq: return c.ref->modseq >= k.n;
    case Key::before: return day < k.day;
    case Key::on: return day == k.day;
    case Key::since: return day >= k.day;
    case Key::sent_before: { auto d = c.sent_day(); return d && *d < k.day; }
    case Key::sent_on: { auto d = c.sent_day(); return d && *d == k.day; }
    case Key::sent_since: { auto d = c.sent_day(); return d && *d >= k.day; }
    case Key::header: return c.header_has(k.a, k.b);
    case Key::body: return mime::contains_folded(c.body_text(), k.a);
    case Key::text: return c.headers_text_has(k.a) || mime::contains_folded(c.body_text(), k.a);
    case Key::not_: return !matches(k.kids[0], c);
    case Key::or_: return matches(k.kids[0], c) || matches(k.kids[1], c);
    case Key::and_:
      return std::all_of(k.kids.begin(), k.kids.end(), [&](const Key& kid) { return matches(kid, c); });
  }
  return false;
}

}  // namespace

void Session::search(const std::string& tag, const Tokens& args, bool uid) {
  size_t i = 0;
  std::set<std::string> returns;
  bool esearch = rev2_;
  if (i < args.size() && upper(args[i].value) == "RETURN" && args[i].kind == Token::atom) {
    if (++i >= args.size() || args[i].kind != Token::open) return done(tag, "BAD", "RETURN (options)");
    for (++i; i < args.size() && args[i].kind != Token::close; ++i) {
      std::string opt = upper(args[i].value);
      if (opt != "MIN" && opt != "MAX" && opt != "COUNT" && opt != "ALL" && opt != "SAVE")
        return done(tag, "BAD", "unknown RETURN option " + opt);
      returns.insert(opt);
    }
    if (i++ >= args.size()) return done(tag, "BAD", "RETURN (options)");
    if (returns.empty()) returns.insert("ALL");
    esearch = true;
  } else if (esearch) {
    returns.insert("ALL");
  }
  if (i < args.size() && args[i].kind == Token::atom && upper(args[i].value) == "CHARSET") {
    std::string charset = i + 1 < args.size() ? upper(args[i + 1].value) : "";
    if (charset != "UTF-8" && charset != "US-ASCII") return done(tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] charset not supported");
    i += 2;
  }
  Tokens rest(args.begin() + static_cast<std::ptrdiff_t>(std::min(i, args.size())), args.end());
  Parser parser{rest, 0, saved_, {}};
  Key root{Key::and_};
  while (parser.i < rest.size()) {
    auto k = parser.key(0);
    if (!k) return done(tag, "BAD", parser.error.empty() ? "malformed search criteria" : parser.error);
    root.kids.push_back(std::move(*k));
  }
  if (root.kids.empty()) return done(tag, "BAD", "SEARCH needs criteria");
  bool uses_modseq = false;
  std::function<void(const Key&)> scan = [&](const Key& k) {
    uses_modseq = uses_modseq || k.op == Key::modseq;
    for (const auto& kid : k.kids) scan(kid);
  };
  scan(root);
  if (uses_modseq) condstore_ = true;
  bool body = needs(root, true), content = body || needs(root, false);
  if (body && view_->size() > config_.max_search_bodies)
    return done(tag, "NO", "[LIMIT] too many messages to search their text; narrow the search");

  auto key = std::make_shared<Key>(std::move(root));
  auto hits = std::make_shared<std::vector<size_t>>();
  auto alive = std::weak_ptr<bool>(alive_);
  auto evaluate = [this, key, hits](size_t index, const std::string* data) {
    Candidate c;
    c.index = index;
    c.ref = &view_->at(index);
    c.seq = index + 1;
    c.star_seq = view_->size();
    c.star_uid = view_->max_uid();
    c.data = data;
    if (matches(*key, c)) hits->push_back(index);
  };
  auto report = [this, alive, tag, uid, esearch, returns, hits, uses_modseq] {
    if (alive.expired()) return;
    std::vector<uint64_t> numbers;
    uint64_t top_modseq = 0;
    for (size_t index : *hits) {
      numbers.push_back(uid ? view_->at(index).uid : index + 1);
      top_modseq = std::max(top_modseq, view_->at(index).modseq);
    }
    if (returns.count("SAVE")) {
      // RFC 5182 §2.1: with MIN and/or MAX, only those are saved.
      saved_.clear();
      bool min = returns.count("MIN"), max = returns.count("MAX");
      for (size_t k = 0; k < hits->size(); ++k)
        if ((!min && !max) || (min && k == 0) || (max && k + 1 == hits->size()))
          saved_.push_back(view_->at((*hits)[k]).uid);
    }
    if (!esearch) {
      std::string line = "SEARCH";
      for (uint64_t n : numbers) line += " " + std::to_string(n);
      if (uses_modseq && !numbers.empty()) line += " (MODSEQ " + std::to_string(top_modseq) + ")";
      untagged(line);
    } else if (!(returns.size() == 1 && returns.count("SAVE"))) {
      std::string line = "ESEARCH (TAG " + quote(tag) + ")";
      if (uid) line += " UID";
      if (!numbers.empty()) {
        if (returns.count("MIN")) line += " MIN " + std::to_string(*std::min_element(numbers.begin(), numbers.end()));
        if (returns.count("MAX")) line += " MAX " + std::to_string(*std::max_element(numbers.begin(), numbers.end()));
        if (returns.count("ALL")) line += " ALL " + compact_set(numbers);
        if (uses_modseq) line += " MODSEQ " + std::to_string(top_modseq);
      }
      if (returns.count("COUNT")) line += " COUNT " + std::to_string(numbers.size());
      untagged(line);
    }
    finish(tag, "OK", std::string(uid ? "UID " : "") + "SEARCH completed", false);
  };
  if (!content) {
    for (size_t index = 0; index < view_->size(); ++index) evaluate(index, nullptr);
    return report();
  }
  wait();
  auto uids = std::make_shared<std::vector<uint64_t>>();
  for (size_t index = 0; index < view_->size(); ++index) uids->push_back(view_->at(index).uid);
  if (!body) {  // header keys: the header blocks suffice, read in a few calls
    return load_headers(uids, [this, alive, evaluate, report](std::shared_ptr<Headers> headers) {
      if (alive.expired()) return;
      for (auto& [u, header] : *headers)
        if (auto index = view_->find_uid(u)) evaluate(*index, &header);
      report();
    });
  }
  Sequence::run(
      uids->size(),
      [this, alive, uids, evaluate](size_t k, std::function<void()> next) {
        uint64_t u = (*uids)[k];
        backend_.call("store", "message.fetch",
                      Record().add("account", account_).add("mailbox", view_->name()).add("uid", u),
                      [this, alive, u, evaluate, next](Result<Record> r) {
                        if (alive.expired()) return;
                        auto index = view_->find_uid(u);
                        if (r && index) {
                          std::string data(r->get_or("data", ""));
                          evaluate(*index, &data);
                        }
                        next();
                      });
      },
      report);
}

}  // namespace postern::imap
