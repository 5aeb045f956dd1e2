#include "log/logger.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace postern::core {
namespace {

constexpr std::string_view kLevels[] = {"debug", "info", "notice", "warning", "error"};

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// Values come from the network too: escape everything that could forge a
// second field or a second line.
void append_escaped(std::string& out, std::string_view v, bool json) {
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, json ? "\\u%04x" : "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  return false;
}

void append_text_pair(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  append_escaped(out, key, false);
  out += '=';
  if (needs_quotes(value)) {
    out += '"';
    append_escaped(out, value, false);
    out += '"';
  } else {
    out += value;
  }
}

void append_json_pair(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  append_escaped(out, key, true);
  out += "\":\"";
  append_escaped(out, value, true);
  out += '"';
}

}  // namespace

Logger& Logger::instance() {
  static Logger logger;
  return logger;
}

void Logger::configure(LogFormat format, pst_log_level min_level) {
  std::lock_guard lock(mutex_);
  format_ = format;
  min_level_ = min_level;
}

std::string Logger::format(pst_log_level level, std::string_view event, std::span<const LogField> fields) const {
  std::string line;
  line.reserve(128);
  std::string ts = timestamp();
  if (format_ == LogFormat::json) {
    line += "{\"ts\":\"" + ts + "\"";
    append_json_pair(line, "level", level_name(level));
    append_json_pair(line, "event", event);
    for (const LogField& f : fields) append_json_pair(line, f.key, f.value);
    line += "}\n";
  } else {
    line += "ts=" + ts;
    append_text_pair(line, "level", level_name(level));
    append_text_pair(line, "event", event);
    for (const LogField& f : fields) append_text_pair(line, f.key, f.value);
    line += '\n';
  }
  return line;
}

void Logger::write(pst_log_level level, std::string_view event, std::span<const LogField> fields) {
  if (!enabled(level)) return;
  std::string line = format(level, event, fields);
  std::lock_guard lock(mutex_);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::string_view level_name(pst_log_level level) {
  int i = static_cast<int>(level);
  return (i >= 0 && i < 5) ? kLevels[i] : "info";
}

bool parse_level(std::string_view name, pst_log_level& out) {
  for (int i = 0; i < 5; ++i)
    if (kLevels[i] == name) {
      out = static_cast<pst_log_level>(i);
      return true;
    }
  return false;
}

void log(pst_log_level level, std::string_view event, std::initializer_list<LogField> fields) {
  Logger::instance().write(level, event, std::span<const LogField>(fields.begin(), fields.size()));
}

}  // namespace postern::core
