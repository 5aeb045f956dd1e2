#include "command.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace postern::imap {
namespace {

constexpr uint64_t kStar = std::numeric_limits<uint64_t>::max();

// A literal announcement at the end of a line: {N}, {N+}, {N-} or ~{N...}.
struct Announcement {
  uint64_t size = 0;
  bool synchronising = true;
  bool binary = false;
};

std::optional<Announcement> announcement(std::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  size_t open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inside = line.substr(open + 1, line.size() - open - 2);
  Announcement a;
  if (!inside.empty() && (inside.back() == '+' || inside.back() == '-')) {
    a.synchronising = false;
    inside.remove_suffix(1);
  }
  if (inside.empty() || inside.size() > 19 || !std::all_of(inside.begin(), inside.end(), ::isdigit))
    return std::nullopt;
  for (char c : inside) a.size = a.size * 10 + static_cast<uint64_t>(c - '0');
  a.binary = open > 0 && line[open - 1] == '~';
  return a;
}

std::string first_word(std::string_view text) {
  size_t end = text.find_first_of(" \r\n");
  std::string_view w = text.substr(0, std::min(end, text.size()));
  if (w.empty() || w.size() > 64) return "*";
  return std::string(w);
}

}  // namespace

std::string CommandReader::tag() const {
  if (!command_.text.empty()) return first_word(command_.text);
  return first_word(std::string_view(input_).substr(pos_));
}

void CommandReader::reset() {
  input_.clear();
  pos_ = 0;
  state_ = State::line;
  command_ = RawCommand{};
  literal_total_ = 0;
}

CommandReader::Event CommandReader::next() {
  for (;;) {
    // Drop what was consumed once it is most of the buffer: a client that
    // keeps a partial line pending cannot grow it without bound.
    if (pos_ > 0 && (pos_ == input_.size() || pos_ >= 65536)) {
      input_.erase(0, pos_);
      pos_ = 0;
    }
    std::string_view in = std::string_view(input_).substr(pos_);
    switch (state_) {
      case State::line: {
        size_t nl = in.find('\n');
        if (nl == std::string_view::npos) {
          if (in.size() <= limits_.max_line) return Event::none;
          refused_tag_ = tag();
          state_ = State::discard_line;
          command_ = RawCommand{};
          return Event::line_too_long;
        }
        std::string_view line = in.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        Event e = end_of_line(line);
        pos_ += nl + 1;
        if (e != Event::none) return e;
        break;
      }
      case State::literal: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(literal_left_, in.size()));
        if (n == 0) return Event::none;
        command_.literals.back().append(in.data(), n);
        pos_ += n;
        literal_left_ -= n;
        if (literal_left_ == 0) state_ = State::line;
        break;
      }
      case State::discard_literal: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(literal_left_, in.size()));
        if (n == 0) return Event::none;
        pos_ += n;
        literal_left_ -= n;
        if (literal_left_ == 0) state_ = State::discard_line;
        break;
      }
      case State::discard_line: {
        size_t nl = in.find('\n');
        if (nl == std::string_view::npos) {
          pos_ = input_.size();  // nothing of it is kept
          return Event::none;
        }
        pos_ += nl + 1;
        // A non-synchronising literal on the dropped line: skip it too.
        auto a = announcement(in.substr(0, nl).substr(0, nl && in[nl - 1] == '\r' ? nl - 1 : nl));
        if (a && !a->synchronising) {
          literal_left_ = a->size;
          state_ = a->size ? State::discard_literal : State::discard_line;
        } else {
          state_ = State::line;
        }
        break;
      }
    }
  }
}

// A refused command whose line announced a non-synchronising literal: the
// client sends it anyway, so drop it, and then the rest of the command.
void CommandReader::skip_announced(std::string_view line) {
  auto a = announcement(line);
  command_ = RawCommand{};
  literal_total_ = 0;
  if (a && !a->synchronising) {
    literal_left_ = a->size;
    state_ = a->size ? State::discard_literal : State::discard_line;
  }
}

CommandReader::Event CommandReader::end_of_line(std::string_view line) {
  if (line.size() > limits_.max_line || command_.text.size() + line.size() > limits_.max_command) {
    refused_tag_ = tag();
    skip_announced(line);
    return Event::line_too_long;
  }
  command_.text.append(line.data(), line.size());
  auto a = announcement(line);
  if (!a) {
    literal_total_ = 0;
    return Event::command;
  }
  uint64_t limit = literal_limit_ ? literal_limit_ : limits_.max_literal;
  if (a->size > limit || literal_total_ + a->size > limits_.max_literal ||
      command_.literals.size() >= limits_.max_literals) {
    refused_tag_ = tag();
    refused_size_ = a->size;
    skip_announced(line);
    return Event::literal_too_big;
  }
  literal_total_ += a->size;
  command_.text += "\r\n";
  command_.literals.emplace_back();
  command_.literals.back().reserve(static_cast<size_t>(std::min<uint64_t>(a->size, 1 << 20)));
  command_.binary.push_back(a->binary);
  literal_left_ = a->size;
  state_ = a->size ? State::literal : State::line;
  return a->synchronising ? Event::continue_literal : Event::none;
}

std::optional<std::vector<Token>> tokenize(const RawCommand& command, size_t max_depth) {
  std::vector<Token> out;
  std::string_view s = command.text;
  size_t i = 0, depth = 0, literal = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ') {
      ++i;
    } else if (c == '(') {
      if (++depth > max_depth) return std::nullopt;
      out.push_back({Token::open, "("});
      ++i;
    } else if (c == ')') {
      if (depth == 0) return std::nullopt;
      --depth;
      out.push_back({Token::close, ")"});
      ++i;
    } else if (c == '"') {
      std::string value;
      ++i;
      for (;; ++i) {
        if (i >= s.size() || s[i] == '\r' || s[i] == '\n') return std::nullopt;
        if (s[i] == '"') break;
        if (s[i] == '\\') {
          if (++i >= s.size() || (s[i] != '\\' && s[i] != '"')) return std::nullopt;
        }
        value += s[i];
      }
      ++i;
      out.push_back({Token::string, std::move(value)});
    } else if (c == '{' || (c == '~' && i + 1 < s.size() && s[i + 1] == '{')) {
      size_t end = s.find("}\r\n", i);
      if (end == std::string_view::npos || literal >= command.literals.size()) return std::nullopt;
      out.push_back({Token::string, command.literals[literal++], true});
      i = end + 3;
    } else {
      // An atom; a [...] section (with spaces and parentheses inside) and
      // a <...> partial after it belong to it.
      size_t start = i, brackets = 0;
      while (i < s.size()) {
        char d = s[i];
        if (d == '[') {
          if (++brackets > max_depth) return std::nullopt;
        } else if (d == ']') {
          if (brackets == 0) break;
          --brackets;
        } else if (brackets == 0 && (d == ' ' || d == '(' || d == ')' || d == '"' || d == '\r' || d == '\n')) {
          break;
        } else if (d == '\r' || d == '\n') {
          return std::nullopt;
        }
        ++i;
      }
      if (brackets) return std::nullopt;
      if (i == start) return std::nullopt;  // a stray character
      std::string value(s.substr(start, i - start));
      std::string upper = value;
      for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      out.push_back({upper == "NIL" ? Token::nil : Token::atom, std::move(value)});
    }
  }
  if (depth != 0) return std::nullopt;
  return out;
}

bool SequenceSet::contains(uint64_t n, uint64_t star) const {
  for (const Range& r : ranges) {
    uint64_t a = r.first == kStar ? star : r.first, b = r.last == kStar ? star : r.last;
    if (a > b) std::swap(a, b);
    if (n >= a && n <= b) return true;
  }
  return false;
}

std::vector<Range> SequenceSet::resolved(uint64_t star) const {
  std::vector<Range> out;
  for (const Range& r : ranges) {
    uint64_t a = r.first == kStar ? star : r.first, b = r.last == kStar ? star : r.last;
    out.push_back({std::min(a, b), std::max(a, b)});
  }
  std::sort(out.begin(), out.end(), [](const Range& x, const Range& y) { return x.first < y.first; });
  std::vector<Range> merged;
  for (const Range& r : out) {
    if (!merged.empty() && r.first <= merged.back().last + 1) merged.back().last = std::max(merged.back().last, r.last);
    else merged.push_back(r);
  }
  return merged;
}

SequenceSet set_of(std::vector<uint64_t> numbers) {
  std::sort(numbers.begin(), numbers.end());
  SequenceSet set;
  for (uint64_t n : numbers) {
    if (!set.ranges.empty() && set.ranges.back().last + 1 == n) set.ranges.back().last = n;
    else set.ranges.push_back({n, n});
  }
  return set;
}

std::optional<SequenceSet> parse_sequence_set(std::string_view text, size_t max_ranges) {
  SequenceSet set;
  if (text == "$") {
    set.saved = true;
    return set;
  }
  auto number = [](std::string_view t) -> std::optional<uint64_t> {
    if (t == "*") return kStar;
    if (t.empty() || t.size() > 10 || t[0] == '0' || !std::all_of(t.begin(), t.end(), ::isdigit)) return std::nullopt;
    uint64_t n = 0;
    for (char c : t) n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n > 0xffffffffull) return std::nullopt;
    return n;
  };
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t colon = item.find(':');
    auto a = number(item.substr(0, colon));
    auto b = colon == std::string_view::npos ? a : number(item.substr(colon + 1));
    if (!a || !b || set.ranges.size() == max_ranges) return std::nullopt;
    set.ranges.push_back({*a, *b});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return set;
}

std::string canonical_mailbox(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper == "INBOX" ? "INBOX" : std::string(name);
}

std::string quote(std::string_view s) {
  bool plain = s.size() < 1024 && std::none_of(s.begin(), s.end(), [](char c) {
                 auto u = static_cast<unsigned char>(c);
                 return u == '\r' || u == '\n' || u == 0 || u >= 0x80;
               });
  if (!plain) return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string nstring(const std::optional<std::string>& s) { return s ? quote(*s) : "NIL"; }

}  // namespace postern::imap
