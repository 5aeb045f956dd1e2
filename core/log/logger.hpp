// Structured logging: one line per event, key=value (or JSON), to stderr.
#pragma once

#include <postern/abi.h>

#include <atomic>
#include <initializer_list>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

namespace postern::core {

struct LogField {
  std::string_view key;
  std::string_view value;
};

enum class LogFormat { text, json };

class Logger {
 public:
  static Logger& instance();

  void configure(LogFormat format, pst_log_level min_level);
  bool enabled(pst_log_level level) const { return level >= min_level_.load(std::memory_order_relaxed); }
  // Thread-safe; each event is written with a single write(2).
  void write(pst_log_level level, std::string_view event, std::span<const LogField> fields);

  // Formats one line without writing it (tests pin the format with this).
  std::string format(pst_log_level level, std::string_view event, std::span<const LogField> fields) const;

 private:
  std::atomic<LogFormat> format_{LogFormat::text};
  std::atomic<pst_log_level> min_level_{PST_LOG_INFO};
  std::mutex mutex_;
};

std::string_view level_name(pst_log_level level);
bool parse_level(std::string_view name, pst_log_level& out);

void log(pst_log_level level, std::string_view event, std::initializer_list<LogField> fields = {});
inline void log_info(std::string_view e, std::initializer_list<LogField> f = {}) { log(PST_LOG_INFO, e, f); }
inline void log_warning(std::string_view e, std::initializer_list<LogField> f = {}) { log(PST_LOG_WARNING, e, f); }
inline void log_error(std::string_view e, std::initializer_list<LogField> f = {}) { log(PST_LOG_ERROR, e, f); }

}  // namespace postern::core
