// Small helpers shared by the IMAP command handlers.
#pragma once

#include "command.hpp"

#include <postern/hex.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::imap {

inline std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// An astring argument: an atom or a string.
inline bool is_string(const Token& t) { return t.kind == Token::atom || t.kind == Token::string; }

// Stored flags ("\\Seen $Junk") as an IMAP list.
inline std::string flag_list(std::string_view flags) {
  std::string out = "(";
  size_t start = 0;
  bool first = true;
  while (start < flags.size()) {
    size_t end = flags.find(' ', start);
    if (end == std::string_view::npos) end = flags.size();
    if (end > start) {
      if (!first) out += ' ';
      out.append(flags.substr(start, end - start));
      first = false;
    }
    start = end + 1;
  }
  return out + ")";
}

inline bool has_flag(std::string_view flags, std::string_view flag) {
  size_t start = 0;
  while (start <= flags.size()) {
    size_t end = flags.find(' ', start);
    if (end == std::string_view::npos) end = flags.size();
    std::string_view f = flags.substr(start, end - start);
    if (f.size() == flag.size() && std::equal(f.begin(), f.end(), flag.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        }))
      return true;
    start = end + 1;
  }
  return false;
}

// "1,2,3": the store's uid lists.
inline std::string compact_list(const std::vector<uint64_t>& uids) {
  std::string out;
  for (uint64_t u : uids) out += (out.empty() ? "" : ",") + std::to_string(u);
  return out;
}

// Runs body(k, next) for k = 0..n-1, one after another (body calls next
// when done with k, now or later), then end(). Iterative when next comes
// at once, so long runs do not grow the stack; nothing keeps itself alive
// once no callback holds next.
class Sequence : public std::enable_shared_from_this<Sequence> {
 public:
  using Body = std::function<void(size_t, std::function<void()>)>;
  static void run(size_t n, Body body, std::function<void()> end) {
    std::shared_ptr<Sequence> s(new Sequence(n, std::move(body), std::move(end)));
    s->from(0);
  }

 private:
  Sequence(size_t n, Body body, std::function<void()> end) : n_(n), body_(std::move(body)), end_(std::move(end)) {}
  void from(size_t k) {
    for (; k < n_; ++k) {
      auto state = std::make_shared<int>(0);  // 0 running, 1 done at once, 2 waiting
      auto self = shared_from_this();
      body_(k, [self, k, state] {
        if (*state == 0) *state = 1;
        else self->from(k + 1);
      });
      if (*state != 1) {
        *state = 2;
        return;
      }
    }
    end_();
  }
  size_t n_;
  Body body_;
  std::function<void()> end_;
};

// A mailbox name from an astring argument: INBOX case-insensitive, no
// trailing delimiter.
inline std::optional<std::string> mailbox_arg(const Token& t) {
  if (!is_string(t) || t.value.empty() || t.value.size() > 1000) return std::nullopt;
  std::string name = canonical_mailbox(t.value);
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    return std::nullopt;
  return name;
}

// Response text with anything that could end the line or fake another
// response (client-supplied values echoed in NO/BAD) made harmless.
inline std::string one_line(std::string text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return text.size() > 1000 ? text.substr(0, 1000) : text;
}

inline std::string unhex(std::string_view h) { return sdk::from_hex(h).value_or(std::string()); }

// "28-Nov-2026 10:43:23 +0000" for a unix time (INTERNALDATE).
std::string internal_date(uint64_t unix_time);
// An IMAP date ("1-Feb-1994") or date-time ("01-Feb-1994 10:00:00 +0100")
// as a unix time (date-time) or days since the epoch (date). nullopt when
// malformed.
std::optional<int64_t> parse_imap_date(std::string_view text);           // days
std::optional<int64_t> parse_imap_date_time(std::string_view text);      // seconds
// The date of an RFC 5322 Date: header, in days since the epoch, in its
// own time zone (RFC 9051 SENTBEFORE etc.); nullopt when unparsable.
std::optional<int64_t> header_date_days(std::string_view value);

}  // namespace postern::imap
