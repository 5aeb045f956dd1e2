// RFC 5322 address lists for IMAP ENVELOPE.
#include "mime_text.hpp"

#include <postern/mime.hpp>
#include <postern/network.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::sdk::mime {
using namespace detail;

namespace {

// Address-list tokens kept per allowed address (phrase words, specials).
constexpr size_t kTokensPerAddress = 64;

// ---- addresses (RFC 5322 §3.4, obsolete syntax of §4.4) ------------------

struct Token {
  enum Kind { atom, quoted, literal, special } kind;
  std::string text;   // quoted: content unescaped; special: the character
  bool space_before;  // whitespace or a comment precedes it
};

bool is_address_special(char c) {
  return std::string_view("<>@,;:").find(c) != std::string_view::npos;
}
bool is_atom_char(char c) {  // atext plus '.', so dot-atoms are one token
  return static_cast<unsigned char>(c) > ' ' && c != 0x7F &&
         std::string_view("()<>[]:;@\\,\"").find(c) == std::string_view::npos;
}

std::vector<Token> lex_addresses(std::string_view s, size_t max_tokens) {
  std::vector<Token> out;
  bool space = false;
  for (size_t i = 0; i < s.size() && out.size() < max_tokens;) {
    char c = s[i];
    if (is_space(c) || c == '(') {  // a comment separates words as whitespace does
      if (c == '(') {
        skip_comment(s, i);
      } else {
        ++i;
      }
      space = true;
      continue;
    }
    Token t{Token::special, {}, space};
    if (c == '"') {
      t = {Token::quoted, read_quoted(s, i), space};
    } else if (c == '[') {  // domain literal, kept as written
      size_t close = std::min(s.find(']', i), s.size() - 1);
      t = {Token::literal, std::string(s.substr(i, close + 1 - i)), space};
      i = close + 1;
    } else if (is_address_special(c)) {
      t.text.assign(1, c);
      ++i;
    } else if (is_atom_char(c)) {
      t = {Token::atom, std::string(read_run(s, i, is_atom_char)), space};
    } else {
      ++i;  // a stray ')', ']', '\\' or control character
      continue;
    }
    space = false;
    out.push_back(std::move(t));
  }
  return out;
}

class AddressParser {
 public:
  AddressParser(std::vector<Token> tokens, size_t max) : t_(std::move(tokens)), max_(max) {}

  std::vector<Address> run() {
    bool in_group = false;
    for (size_t i = 0; i < t_.size() && out_.size() < max_;) {
      if (is(i, ',') || is(i, '>')) {
        ++i;
      } else if (is(i, ';')) {
        if (in_group) emit(Address{});  // group end: everything absent
        in_group = false;
        ++i;
      } else {
        size_t stop = i;
        while (stop < t_.size() && !is_stop(stop)) ++stop;
        if (is(stop, ':') && !in_group) {
          Address start;
          start.mailbox = phrase(i, stop).value_or("");
          emit(std::move(start));
          in_group = true;
          i = stop + 1;
        } else if (is(stop, '<')) {
          i = angle(stop, phrase(i, stop));
        } else {
          bare(i, stop);
          i = is(stop, ':') ? stop + 1 : stop;  // a group inside a group: ':' dropped
        }
      }
    }
    if (in_group) emit(Address{});
    return std::move(out_);
  }

 private:
  bool is(size_t i, char special) const {
    return i < t_.size() && t_[i].kind == Token::special && t_[i].text[0] == special;
  }
  bool is_stop(size_t i) const { return is(i, ',') || is(i, ';') || is(i, ':') || is(i, '<') || is(i, '>'); }

  void emit(Address a) {
    if (out_.size() < max_) out_.push_back(std::move(a));
  }

  std::string concat(size_t from, size_t to) const {
    std::string out;
    for (size_t k = from; k < to; ++k) out += t_[k].text;
    return out;
  }

  // Display name: the words as written (one space where the source had
  // whitespace or a comment), then RFC 2047 decoded; quoted strings too,
  // as many mailers put encoded words inside quotes.
  std::optional<std::string> phrase(size_t from, size_t to) const {
    std::string out;
    for (size_t k = from; k < to; ++k) {
      if (!out.empty() && t_[k].space_before) out += ' ';
      out += t_[k].text;
    }
    std::string decoded = decode_words(out);
    std::string_view name = trim(decoded);
    if (name.empty()) return std::nullopt;
    return std::string(name);
  }

  void addr_spec(size_t from, size_t to, Address& a) const {
    size_t at = from;
    while (at < to && !is(at, '@')) ++at;
    a.mailbox = concat(from, at);
    a.host = at < to ? concat(at + 1, to) : std::string();
  }

  void bare(size_t from, size_t to) {
    if (from == to) return;
    Address a;
    addr_spec(from, to, a);
    if (!a.mailbox->empty() || !a.host->empty()) emit(std::move(a));
  }

  // "<[@route,@route:]local@domain>" from t_[lt]; returns the index of the
  // ',' or ';' that ends the address (junk after '>' is skipped).
  size_t angle(size_t lt, std::optional<std::string> name) {
    size_t end = lt + 1;
    // Stop at '>', or (unterminated) at a ',' that does not continue a route.
    while (end < t_.size() && !is(end, '>') && !is(end, '<') && !is(end, ';') && !(is(end, ',') && !is(end + 1, '@')))
      ++end;
    Address a;
    a.name = std::move(name);
    size_t from = lt + 1;
    if (is(from, '@')) {
      size_t colon = from;
      while (colon < end && !is(colon, ':')) ++colon;
      if (colon < end) {
        a.route = concat(from, colon);
        from = colon + 1;
      }
    }
    addr_spec(from, end, a);
    if (a.name || !a.mailbox->empty() || !a.host->empty()) emit(std::move(a));
    size_t next = is(end, '>') ? end + 1 : end;
    while (next < t_.size() && !is(next, ',') && !is(next, ';')) ++next;
    return next;
  }

  std::vector<Token> t_;
  size_t max_;
  std::vector<Address> out_;
};

}  // namespace

// ---- public API ----------------------------------------------------------

std::vector<Address> parse_addresses(std::string_view value, size_t max) {
  size_t max_tokens = max > SIZE_MAX / kTokensPerAddress ? SIZE_MAX : max * kTokensPerAddress + 1024;
  return AddressParser(lex_addresses(value, max_tokens), max).run();
}

namespace {


}  // namespace

std::optional<std::string> author_domain(std::string_view message) {
  constexpr size_t kMaxFromBytes = 4096;  // with 1000 addresses the parser cannot run out of tokens
  if (message.starts_with("\r\n")) return std::nullopt;  // no header section
  std::string_view block = message.substr(0, message.find("\r\n\r\n"));
  Limits limits;
  // A From the bounded parser might not reach must not go unseen.
  if (block.size() >= limits.max_header_bytes) return std::nullopt;
  auto headers = parse_headers(block, limits);
  if (headers.size() >= limits.max_headers) return std::nullopt;
  std::optional<std::string> from;
  for (const Header& h : headers) {
    if (h.name.size() != 4 || !std::equal(h.name.begin(), h.name.end(), "from", [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        }))
      continue;
    if (from) return std::nullopt;  // two From fields
    from = h.value;
  }
  if (!from || from->size() > kMaxFromBytes) return std::nullopt;
  // Several mailboxes are fine if they share one domain (RFC 7489 §6.6.1).
  std::optional<std::string> domain;
  for (const Address& a : parse_addresses(*from, 1000)) {
    if (!a.host) continue;  // group markers
    auto name = net::dns_name(*a.host);  // no literals, quoted strings or stray bytes
    if (!name || (domain && *domain != *name)) return std::nullopt;
    domain = name;
  }
  return domain;
}

}  // namespace postern::sdk::mime
