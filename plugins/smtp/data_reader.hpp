// The DATA phase (RFC 5321 §4.5.2): un-stuffs leading dots and ends only
// at <CRLF>.<CRLF>. A bare CR or bare LF anywhere marks the message
// (SMTP smuggling defence: `\n.\n`, `\r.\r`, `\r\n.\n`, `\n.\r\n` never end
// it, and the session rejects a marked message whole). Bytes past the size
// limit are counted but not kept, so memory stays bounded by the limit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace postern::smtp {

class DataReader {
 public:
  explicit DataReader(uint64_t max_size) : max_(max_size) {}

  // Consumes bytes up to and including the terminating <CRLF>.<CRLF>;
  // returns how many it used (the rest belongs to the next command).
  size_t feed(std::string_view in) {
    size_t i = 0;
    for (; i < in.size() && state_ != State::done; ++i) step(static_cast<unsigned char>(in[i]));
    return i;
  }
  bool done() const { return state_ == State::done; }
  bool too_big() const { return seen_ > max_; }
  bool bare_newline() const { return bare_; }
  uint64_t size() const { return seen_; }
  std::string take() { return std::move(data_); }
  // What is kept so far (for checks while it streams); drop() keeps no more.
  std::string_view kept() const { return data_; }
  void drop() {
    dropped_ = true;
    std::string().swap(data_);
  }

 private:
  enum class State { line_start, dot, dot_cr, line, cr, done };

  void put(char c) {
    if (++seen_ <= max_ && !dropped_) {
      data_ += c;
    } else if (!data_.empty()) {
      std::string().swap(data_);  // refused anyway: give the memory back now
    }
  }

  void step(unsigned char c) {
    switch (state_) {
      case State::line_start:
        if (c == '.') {
          state_ = State::dot;
          return;
        }
        state_ = State::line;
        return in_line(c);
      case State::dot:  // a leading dot: the end, or a stuffed dot to drop
        if (c == '\r') {
          state_ = State::dot_cr;
          return;
        }
        state_ = State::line;
        return in_line(c);
      case State::dot_cr:
        if (c == '\n') {
          state_ = State::done;
          return;
        }
        bare_ = true;  // "\r\n.\r" then something else
        put('\r');
        state_ = State::line;
        return in_line(c);
      case State::line:
        return in_line(c);
      case State::cr:
        if (c == '\n') {
          put('\r');
          put('\n');
          state_ = State::line_start;
          return;
        }
        bare_ = true;
        put('\r');
        state_ = State::line;
        return in_line(c);
      case State::done:
        return;
    }
  }

  void in_line(unsigned char c) {
    if (c == '\r') {
      state_ = State::cr;
      return;
    }
    if (c == '\n') bare_ = true;  // stays in `line`: a bare LF never starts a line
    put(static_cast<char>(c));
  }

  uint64_t max_;
  uint64_t seen_ = 0;
  bool bare_ = false, dropped_ = false;
  State state_ = State::line_start;
  std::string data_;
};

}  // namespace postern::smtp
