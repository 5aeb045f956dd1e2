#include "fetch.hpp"

#include "session.hpp"
#include "util.hpp"

#include <postern/mime.hpp>

namespace postern::imap {

using sdk::Record;
using sdk::Result;
namespace mime = sdk::mime;

namespace {

std::optional<uint64_t> digits(std::string_view s) {
  if (s.empty() || s.size() > 12 || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
  uint64_t n = 0;
  for (char c : s) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n;
}

// "1.2.HEADER.FIELDS (A B)" -> part {1,2}, text, fields.
bool parse_section(std::string_view s, FetchItem& item) {
  while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.front()))) {
    size_t dot = s.find('.');
    auto n = digits(s.substr(0, dot));
    if (!n || *n == 0 || *n > 100000 || item.part.size() >= 64) return false;
    item.part.push_back(static_cast<uint32_t>(*n));
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
    if (s.empty()) return false;
  }
  if (s.empty()) return true;
  size_t paren = s.find(" (");
  std::string text = upper(std::string(s.substr(0, paren)));
  if (text == "HEADER.FIELDS" || text == "HEADER.FIELDS.NOT") {
    if (paren == std::string_view::npos || s.back() != ')') return false;
    std::string_view list = s.substr(paren + 2, s.size() - paren - 3);
    size_t start = 0;
    while (start < list.size()) {
      size_t end = list.find(' ', start);
      if (end == std::string_view::npos) end = list.size();
      std::string_view f = list.substr(start, end - start);
      if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
      if (!f.empty()) item.fields.push_back(upper(std::string(f)));
      start = end + 1;
    }
    if (item.fields.empty()) return false;
  } else if (paren != std::string_view::npos) {
    return false;
  } else if (text != "HEADER" && text != "TEXT" && (text != "MIME" || item.part.empty())) {
    return false;
  }
  item.text = text;
  return true;
}

// The part a section's numbers name; message/rfc822 parts are entered.
const mime::Part* find_part(const mime::Part& root, const std::vector<uint32_t>& path) {
  const mime::Part* p = &root;
  for (uint32_t n : path) {
    if (p->message() && !p->children.empty()) p = &p->children[0];
    if (p->multipart() && !p->children.empty()) {
      if (n > p->children.size()) return nullptr;
      p = &p->children[n - 1];
    } else if (n != 1) {
      return nullptr;
    }
  }
  return p;
}

// Header lines (with their folding) whose names are (or are not) in fields.
std::string header_fields(std::string_view block, const std::vector<std::string>& fields, bool exclude) {
  std::string out;
  bool keep = false;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t nl = block.find('\n', pos);
    size_t end = nl == std::string_view::npos ? block.size() : nl + 1;
    std::string_view line = block.substr(pos, end - pos);
    pos = end;
    if (line == "\r\n" || line == "\n") break;
    if (line[0] != ' ' && line[0] != '\t') {
      size_t colon = line.find(':');
      std::string name = upper(std::string(line.substr(0, colon)));
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
      bool listed = colon != std::string_view::npos && std::find(fields.begin(), fields.end(), name) != fields.end();
      keep = colon != std::string_view::npos && listed != exclude;
    }
    if (keep) out.append(line);
  }
  return out + "\r\n";
}

std::string params_list(const mime::Params& params) {
  if (params.empty()) return "NIL";
  std::string out = "(";
  for (size_t i = 0; i < params.size(); ++i)
    out += (i ? " " : "") + quote(params[i].first) + " " + quote(params[i].second);
  return out + ")";
}

std::string disposition(const mime::Part& p) {
  if (!p.disposition) return "NIL";
  return "(" + quote(p.disposition->first) + " " + params_list(p.disposition->second) + ")";
}

std::string language(const mime::Part& p) {
  if (p.language.empty()) return "NIL";
  if (p.language.size() == 1) return quote(p.language[0]);
  std::string out = "(";
  for (size_t i = 0; i < p.language.size(); ++i) out += (i ? " " : "") + quote(p.language[i]);
  return out + ")";
}

std::optional<std::string> opt(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

std::string address_list(const std::vector<mime::Address>& list) {
  if (list.empty()) return "NIL";
  std::string out = "(";
  for (const auto& a : list)
    out += "(" + nstring(a.name) + " " + nstring(a.route) + " " + nstring(a.mailbox) + " " + nstring(a.host) + ")";
  return out + ")";
}

// A section's bytes with <origin.count> applied, answered as a literal
// labelled with its origin.
std::string partial_literal(const FetchItem& item, std::string_view data, bool binary) {
  std::string label = item.label;
  if (item.partial) {
    uint64_t origin = item.partial->first;
    data = origin >= data.size() ? std::string_view() : data.substr(origin, item.partial->second);
    label += "<" + std::to_string(origin) + ">";
  }
  bool nul = binary && data.find('\0') != std::string_view::npos;
  return label + " " + (nul ? "~{" : "{") + std::to_string(data.size()) + "}\r\n" + std::string(data);
}

}  // namespace

std::optional<FetchItem> parse_fetch_item(const std::string& atom) {
  FetchItem item;
  std::string u = upper(atom);
  struct Simple {
    const char* name;
    FetchItem::Kind kind;
  };
  static constexpr Simple kSimple[] = {{"FLAGS", FetchItem::flags},          {"INTERNALDATE", FetchItem::internaldate},
                                       {"RFC822.SIZE", FetchItem::size},      {"ENVELOPE", FetchItem::envelope},
                                       {"BODYSTRUCTURE", FetchItem::bodystructure}, {"BODY", FetchItem::body},
                                       {"UID", FetchItem::uid},              {"MODSEQ", FetchItem::modseq}};
  for (const auto& s : kSimple)
    if (u == s.name) {
      item.kind = s.kind;
      item.label = s.name;
      return item;
    }
  if (u == "RFC822" || u == "RFC822.HEADER" || u == "RFC822.TEXT") {
    item.kind = FetchItem::section;
    item.peek = u == "RFC822.HEADER";
    item.text = u == "RFC822" ? "" : u.substr(7);
    item.label = u;
    return item;
  }
  size_t open = u.find('['), close = u.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  std::string head = u.substr(0, open);
  if (head == "BODY" || head == "BODY.PEEK") item.kind = FetchItem::section;
  else if (head == "BINARY" || head == "BINARY.PEEK") item.kind = FetchItem::binary;
  else if (head == "BINARY.SIZE") item.kind = FetchItem::binary_size;
  else return std::nullopt;
  item.peek = head.ends_with(".PEEK") || item.kind == FetchItem::binary_size;
  if (!parse_section(std::string_view(atom).substr(open + 1, close - open - 1), item)) return std::nullopt;
  if (item.kind != FetchItem::section && !item.text.empty()) return std::nullopt;  // BINARY takes part numbers only
  std::string_view rest = std::string_view(atom).substr(close + 1);
  if (!rest.empty()) {
    size_t dot = rest.find('.');
    if (rest.front() != '<' || rest.back() != '>' || dot == std::string_view::npos || item.kind == FetchItem::binary_size)
      return std::nullopt;
    auto origin = digits(rest.substr(1, dot - 1)), count = digits(rest.substr(dot + 1, rest.size() - dot - 2));
    if (!origin || !count || *count == 0) return std::nullopt;
    item.partial = std::make_pair(*origin, *count);
  }
  std::string label = head == "BODY.PEEK" ? "BODY" : head == "BINARY.PEEK" ? "BINARY" : head;
  item.label = label + u.substr(open, close - open + 1);
  return item;
}

std::string envelope(const mime::Part& part) {
  auto h = [&](std::string_view name) -> std::optional<std::string> {
    auto v = mime::find_header(part.headers, name);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  };
  auto addresses = [&](std::string_view name) {
    auto v = mime::find_header(part.headers, name);
    return v ? mime::parse_addresses(*v) : std::vector<mime::Address>{};
  };
  auto from = addresses("From");
  auto sender = addresses("Sender"), reply_to = addresses("Reply-To");
  if (sender.empty()) sender = from;
  if (reply_to.empty()) reply_to = from;
  return "(" + nstring(h("Date")) + " " + nstring(h("Subject")) + " " + address_list(from) + " " +
         address_list(sender) + " " + address_list(reply_to) + " " + address_list(addresses("To")) + " " +
         address_list(addresses("Cc")) + " " + address_list(addresses("Bcc")) + " " + nstring(h("In-Reply-To")) +
         " " + nstring(h("Message-ID")) + ")";
}

std::string body_structure(std::string_view message, const mime::Part& p, bool ext) {
  const auto& ct = p.content_type;
  if (p.multipart() && !p.children.empty()) {
    std::string out = "(";
    for (const auto& child : p.children) out += body_structure(message, child, ext);
    out += " " + quote(ct.subtype);
    if (ext) out += " " + params_list(ct.params) + " " + disposition(p) + " " + language(p) + " " + nstring(opt(p.location));
    return out + ")";
  }
  // A multipart without its boundary has no parts, and IMAP has no form
  // for that: show it as text, so its content is at least readable. A
  // message/rfc822 the parser did not enter (depth limit) is opaque data.
  bool broken = p.multipart();
  bool opaque = p.message() && p.children.empty();
  std::string type = broken ? "text" : opaque ? "application" : ct.type;
  std::string subtype = broken ? "plain" : opaque ? "octet-stream" : ct.subtype;
  std::string out = "(" + quote(type) + " " + quote(subtype) + " " +
                    params_list(broken || opaque ? mime::Params{} : ct.params) + " " +
                    nstring(opt(p.id)) + " " + nstring(opt(p.description)) + " " + quote(p.encoding) + " " +
                    std::to_string(p.body_size());
  if (ct.type == "text" || broken) out += " " + std::to_string(p.lines);
  if (p.message() && !p.children.empty())
    out += " " + envelope(p.children[0]) + " " + body_structure(message, p.children[0], ext) + " " +
           std::to_string(p.lines);
  if (ext) out += " " + nstring(opt(p.md5)) + " " + disposition(p) + " " + language(p) + " " + nstring(opt(p.location));
  return out + ")";
}

std::optional<std::string> render_item(const FetchItem& item, std::string_view message, const mime::Part& root) {
  switch (item.kind) {
    case FetchItem::envelope:
      return "ENVELOPE " + envelope(root);
    case FetchItem::bodystructure:
      return "BODYSTRUCTURE " + body_structure(message, root, true);
    case FetchItem::body:
      return "BODY " + body_structure(message, root, false);
    case FetchItem::section: {
      const mime::Part* p = find_part(root, item.part);
      if (!p) return std::nullopt;
      std::string_view data;
      std::string owned;
      // HEADER/TEXT of a part address the message it encapsulates.
      const mime::Part* m = p;
      if (!item.part.empty() && item.text != "MIME" && !item.text.empty()) {
        if (!p->message() || p->children.empty()) return std::nullopt;
        m = &p->children[0];
      }
      if (item.text.empty()) {
        data = item.part.empty() ? message : message.substr(p->body_start, p->body_size());
      } else if (item.text == "HEADER" || item.text == "MIME") {
        data = message.substr(m->start, m->header_end - m->start);
      } else if (item.text == "TEXT") {
        data = message.substr(m->body_start, m->body_size());
      } else {
        owned = header_fields(message.substr(m->start, m->header_end - m->start), item.fields,
                              item.text == "HEADER.FIELDS.NOT");
        data = owned;
      }
      return partial_literal(item, data, false);
    }
    case FetchItem::binary:
    case FetchItem::binary_size: {
      const mime::Part* p = find_part(root, item.part);
      if (!p || p->multipart()) return std::nullopt;
      const std::string& enc = p->encoding;
      if (enc != "7bit" && enc != "8bit" && enc != "binary" && enc != "base64" && enc != "quoted-printable")
        return std::nullopt;
      std::string decoded = mime::decode_transfer(message.substr(p->body_start, p->body_size()), enc);
      if (item.kind == FetchItem::binary_size) return item.label + " " + std::to_string(decoded.size());
      return partial_literal(item, decoded, true);
    }
    default:
      return std::nullopt;
  }
}

// --- the command ---

std::string Session::fetch_response(const std::vector<FetchItem>& items, const MessageRef& m, const std::string* data,
                                    const mime::Part* root, bool* unknown_cte) const {
  std::string out;
  for (const auto& item : items) {
    std::string piece;
    switch (item.kind) {
      case FetchItem::flags: piece = "FLAGS " + flag_list(m.flags); break;
      case FetchItem::internaldate: piece = "INTERNALDATE \"" + internal_date(m.internaldate) + "\""; break;
      case FetchItem::size: piece = "RFC822.SIZE " + std::to_string(m.size); break;
      case FetchItem::uid: piece = "UID " + std::to_string(m.uid); break;
      case FetchItem::modseq: piece = "MODSEQ (" + std::to_string(m.modseq) + ")"; break;
      default: {
        auto r = data && root ? render_item(item, *data, *root) : std::nullopt;
        // BINARY: NO [UNKNOWN-CTE] at the end
        if (!r && item.kind != FetchItem::section && unknown_cte) *unknown_cte = true;
        // A section this message does not have is empty (RFC 9051 §6.4.5).
        std::string origin = item.partial ? "<" + std::to_string(item.partial->first) + ">" : "";
        piece = r ? *r : item.label + origin + (item.kind == FetchItem::binary_size ? " 0" : " \"\"");
      }
    }
    out += (out.empty() ? "" : " ") + piece;
  }
  return out;
}

void Session::load_headers(std::shared_ptr<const std::vector<uint64_t>> uids,
                           std::function<void(std::shared_ptr<Headers>)> done) {
  constexpr size_t kPerCall = 1000;  // the store's bound per message.headers
  auto headers = std::make_shared<Headers>();
  auto alive = std::weak_ptr<bool>(alive_);
  Sequence::run(
      (uids->size() + kPerCall - 1) / kPerCall,
      [this, alive, uids, headers](size_t k, std::function<void()> next) {
        Record request = Record().add("account", account_).add("mailbox", view_->name());
        for (size_t i = k * kPerCall; i < std::min(uids->size(), (k + 1) * kPerCall); ++i) request.add("uid", (*uids)[i]);
        backend_.call("store", "message.headers", request, [alive, headers, next](Result<Record> r) {
          if (alive.expired()) return;
          if (r)
            for (auto raw : r->all("message")) {
              auto m = Record::parse(raw).value_or(Record());
              (*headers)[m.number("uid").value_or(0)] = std::string(m.get_or("header", ""));
            }
          next();
        });
      },
      [headers, done] { done(headers); });
}

void Session::fetch(const std::string& tag, const Tokens& args, bool uid) {
  std::string completed = std::string(uid ? "UID " : "") + "FETCH completed";
  auto set = args.size() >= 2 ? parse_sequence_set(args[0].value) : std::nullopt;
  if (!set) return done(tag, "BAD", "FETCH sequence-set items");
  std::vector<FetchItem> items;
  size_t i = 1;
  auto add = [&](const std::string& atom) {
    std::string u = upper(atom);
    if (u == "ALL" || u == "FAST" || u == "FULL") {
      for (const char* n : {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}) items.push_back(*parse_fetch_item(n));
      if (u != "FAST") items.push_back(*parse_fetch_item("ENVELOPE"));
      if (u == "FULL") items.push_back(*parse_fetch_item("BODY"));
      return true;
    }
    auto item = parse_fetch_item(atom);
    if (item) items.push_back(*item);
    return item.has_value();
  };
  if (args[i].kind == Token::open) {
    for (++i; i < args.size() && args[i].kind != Token::close; ++i)
      if (args[i].kind != Token::atom || !add(args[i].value)) return done(tag, "BAD", "unknown FETCH item " + args[i].value);
    if (i++ >= args.size()) return done(tag, "BAD", "FETCH items");
  } else if (args[i].kind != Token::atom || !add(args[i++].value)) {
    return done(tag, "BAD", "unknown FETCH item " + args[i - 1].value);
  }
  std::optional<uint64_t> changed_since;
  if (i < args.size()) {  // (CHANGEDSINCE n) — RFC 7162
    if (args[i].kind != Token::open || i + 3 >= args.size() || upper(args[i + 1].value) != "CHANGEDSINCE" ||
        args[i + 3].kind != Token::close || i + 4 != args.size())
      return done(tag, "BAD", "unknown FETCH modifier");
    changed_since = digits(args[i + 2].value);
    if (!changed_since) return done(tag, "BAD", "CHANGEDSINCE needs a number");
    condstore_ = true;
  }
  if (items.size() > 64) return done(tag, "BAD", "[LIMIT] too many FETCH items");
  if (uid && std::none_of(items.begin(), items.end(), [](auto& x) { return x.kind == FetchItem::uid; }))
    items.insert(items.begin(), *parse_fetch_item("UID"));
  if (changed_since && std::none_of(items.begin(), items.end(), [](auto& x) { return x.kind == FetchItem::modseq; }))
    items.push_back(*parse_fetch_item("MODSEQ"));
  if (set->saved) {
    set = set_of(saved_);
    uid = true;
  }
  auto uids = std::make_shared<std::vector<uint64_t>>();
  for (size_t index : view_->select(*set, uid))
    if (!changed_since || view_->at(index).modseq > *changed_since) uids->push_back(view_->at(index).uid);
  bool content = std::any_of(items.begin(), items.end(), [](auto& x) { return x.needs_content(); });
  bool header_only = std::all_of(items.begin(), items.end(),
                                 [](auto& x) { return !x.needs_content() || x.needs_header_only(); });
  bool sets_seen = !view_->read_only() && std::any_of(items.begin(), items.end(), [](auto& x) {
    return (x.kind == FetchItem::section || x.kind == FetchItem::binary) && !x.peek;
  });
  wait();
  auto alive = std::weak_ptr<bool>(alive_);
  auto unknown_cte = std::make_shared<bool>(false);
  // Header items without \Seen to set: every header block in a few store
  // calls, not one call (and one whole message) per message.
  if (content && header_only && !sets_seen) {
    return load_headers(uids, [this, alive, tag, items, uids, completed](std::shared_ptr<Headers> headers) {
      if (alive.expired()) return;
      Sequence::run(
          uids->size(),
          [this, items, uids, headers](size_t k, std::function<void()> next) {
            uint64_t u = (*uids)[k];
            auto found = headers->find(u);
            auto index = view_->find_uid(u);
            if (found == headers->end() || !index) return next();  // expunged meanwhile
            mime::Part root = mime::parse(found->second);
            untagged(std::to_string(*index + 1) + " FETCH (" + fetch_response(items, view_->at(*index), &found->second, &root, nullptr) + ")");
            if (io_.backlogged()) io_.when_drained(next);
            else next();
          },
          [this, alive, tag, completed] {
            if (!alive.expired()) finish(tag, "OK", completed, false);
          });
    });
  }
  auto body = [this, alive, items, uids, content, sets_seen, unknown_cte](size_t k, std::function<void()> next) {
    uint64_t u = (*uids)[k];
    // After each response: wait while the client is behind on reading.
    auto then = [this, next] {
      if (io_.backlogged()) io_.when_drained(next);
      else next();
    };
    auto respond = [this, items, u, then, unknown_cte](const std::string* data, const mime::Part* root, bool seen_now) {
      auto index = view_->find_uid(u);
      if (!index) return then();  // expunged meanwhile
      const MessageRef& m = view_->at(*index);
      std::string out = fetch_response(items, m, data, root, unknown_cte.get());
      if (seen_now && std::none_of(items.begin(), items.end(), [](auto& x) { return x.kind == FetchItem::flags; })) {
        out += " FLAGS " + flag_list(m.flags);  // \Seen set implicitly
        if (condstore_) out += " MODSEQ (" + std::to_string(m.modseq) + ")";
      }
      untagged(std::to_string(*index + 1) + " FETCH (" + out + ")");
      then();
    };
    if (!content) return respond(nullptr, nullptr, false);
    backend_.call("store", "message.fetch",
                  Record().add("account", account_).add("mailbox", view_->name()).add("uid", u),
                  [this, alive, u, respond, sets_seen, then](Result<Record> r) {
                    if (alive.expired()) return;
                    if (!r) return then();  // expunged by another session meanwhile
                    auto data = std::make_shared<std::string>(r->get_or("data", ""));
                    auto root = std::make_shared<mime::Part>(mime::parse(*data));
                    auto index = view_->find_uid(u);
                    if (!sets_seen || !index || has_flag(view_->at(*index).flags, "\\Seen"))
                      return respond(data.get(), root.get(), false);
                    backend_.call("store", "message.flags",
                                  Record()
                                      .add("account", account_)
                                      .add("mailbox", view_->name())
                                      .add("uids", std::to_string(u))
                                      .add("mode", "add")
                                      .add("flags", "\\Seen"),
                                  [this, alive, u, data, root, respond](Result<Record> f) {
                                    if (alive.expired()) return;
                                    if (f)
                                      for (auto raw : f->all("message")) {
                                        auto m = Record::parse(raw).value_or(Record());
                                        view_->set_flags(u, std::string(m.get_or("flags", "")),
                                                         m.number("modseq").value_or(0));
                                      }
                                    respond(data.get(), root.get(), f.ok());
                                  });
                  });
  };
  Sequence::run(uids->size(), body, [this, alive, tag, completed, unknown_cte] {
    if (alive.expired()) return;
    if (*unknown_cte) return finish(tag, "NO", "[UNKNOWN-CTE] a part's content transfer encoding is unknown", false);
    finish(tag, "OK", completed, false);
  });
}

}  // namespace postern::imap
