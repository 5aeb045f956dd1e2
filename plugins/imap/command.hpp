// IMAP command framing and tokens (RFC 9051 §2.2, §4; RFC 7888 literals).
//
// CommandReader splits the client's bytes into complete commands: a line,
// and for each line ending in a literal announcement ({N}, {N+}, ~{N}) the
// N bytes that follow and the next line. It never allocates for a literal
// before checking its size, and asks the session before a synchronising
// literal is sent (the continuation request, or a refusal).
//
// Tokens turns one command into atoms, strings (quoted or literal), lists
// and NIL, treating BODY[...]<...> section specs as one atom.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::imap {

struct CommandLimits {
  size_t max_line = 65536;        // one line of a command
  size_t max_command = 1 << 20;   // all lines of one command, literals excluded
  uint64_t max_literal = 64ull << 20;  // one literal (APPEND: also checked against quota)
  size_t max_literals = 64;       // literals in one command
};

// A command as received: text with each literal replaced by a {index}
// marker the tokenizer understands, and the literals' bytes.
struct RawCommand {
  std::string text;
  std::vector<std::string> literals;
  std::vector<bool> binary;  // ~{N} (RFC 3516) literal at that index
};

class CommandReader {
 public:
  enum class Event {
    none,           // need more input
    command,        // take() a complete command
    continue_literal,  // send "+ ..." (synchronising literal accepted)
    literal_too_big,   // refuse the command (tag known via tag()); input resyncs
    line_too_long,     // refuse (BAD); the rest of that line was dropped
  };

  explicit CommandReader(CommandLimits limits) : limits_(limits) {}

  void append(std::string_view bytes) { input_.append(bytes.data(), bytes.size()); }
  // Advances over buffered input; call until it returns none.
  Event next();
  RawCommand take() { return std::move(command_); }
  // The tag of the command being read, "*" if unknown; refused_tag(): the
  // tag of the command a line_too_long / literal_too_big refused.
  std::string tag() const;
  const std::string& refused_tag() const { return refused_tag_; }
  // The size of a literal announced and refused (literal_too_big).
  uint64_t refused_size() const { return refused_size_; }
  // Drops everything buffered (after STARTTLS: no injected commands).
  void reset();
  // The largest literal accepted from now on (small before login).
  void set_literal_limit(uint64_t bytes) { literal_limit_ = bytes; }
  // After continue_literal: the command so far and the literal's size; or
  // refuse it (the client sends nothing more of that command).
  const std::string& pending_text() const { return command_.text; }
  uint64_t pending_literal() const { return literal_left_; }
  void refuse_literal() {
    command_ = RawCommand{};
    literal_total_ = 0;
    literal_left_ = 0;
    state_ = State::line;
  }
  bool idle() const { return input_.empty() && command_.text.empty() && state_ == State::line; }
  size_t buffered() const { return input_.size(); }

 private:
  enum class State { line, literal, discard_literal, discard_line };

  Event end_of_line(std::string_view line);
  void skip_announced(std::string_view line);

  CommandLimits limits_;
  std::string input_;
  size_t pos_ = 0;
  State state_ = State::line;
  uint64_t literal_left_ = 0;
  bool literal_binary_ = false;
  RawCommand command_;
  uint64_t refused_size_ = 0;
  uint64_t literal_limit_ = 0;    // 0: limits_.max_literal
  uint64_t literal_total_ = 0;    // bytes of literals in the command being read
  std::string refused_tag_;
};

struct Token {
  enum Kind { atom, string, open, close, nil } kind = atom;
  std::string value;
  bool literal = false;  // string that came as a literal
};

// Splits a RawCommand into tokens; nullopt on unbalanced quoting or an
// unknown literal marker. Bounded: parentheses deeper than max_depth fail.
std::optional<std::vector<Token>> tokenize(const RawCommand& command, size_t max_depth = 32);

// "1:3,7,10:*" -> ranges; '*' is represented as UINT64_MAX (resolved by
// the caller against the largest number). nullopt when malformed or
// longer than max_ranges. "$" (RFC 5182) is accepted as a marker too.
struct Range {
  uint64_t first = 0, last = 0;  // first <= last after normalising
};
struct SequenceSet {
  std::vector<Range> ranges;
  bool saved = false;  // "$"
  bool contains(uint64_t n, uint64_t star) const;
  // Ranges with '*' resolved, sorted and merged: for binary search.
  std::vector<Range> resolved(uint64_t star) const;
};
// The set of exactly these numbers (SEARCH SAVE's "$"), any size.
SequenceSet set_of(std::vector<uint64_t> numbers);
std::optional<SequenceSet> parse_sequence_set(std::string_view text, size_t max_ranges = 10000);

// Mailbox names: "INBOX" case-insensitively is INBOX; modified UTF-7 is
// not decoded (UTF8=ACCEPT clients and rev2 send UTF-8).
std::string canonical_mailbox(std::string_view name);

// IMAP quoting of a string for responses: a quoted string when it is short
// and plain, else a literal.
std::string quote(std::string_view s);
std::string nstring(const std::optional<std::string>& s);

}  // namespace postern::imap
