// Test plugin: a line-echo protocol on the C++ SDK layer, built twice
// (ECHO_VERSION 1 and 2) for the hot-reload tests.
//
//   greeting     "HELLO echo/<version> <greeting>"
//   VERSION      "VERSION <version>"
//   STARTTLS     "GO" then TLS
//   INFO         "INFO tls=<0|1> version=<v> sni=<name> peer=<addr>"
//   TIMER <ms>   "TICK" after ms (a timer bound to the connection)
//   WORK         "DONE <n>" after a job on the worker pool
//   PAUSE <ms>   "PAUSED", holds later lines, then "RESUMED" and goes on
//   FLOOD <n>    n lines of 1 KiB, honouring backpressure, then "FLOODED"
//   BLAST <n>    n KiB ignoring backpressure (the host must cut it off)
//   QUIT         "BYE"
//   DROP         closes without a word (from inside the hook)
//   anything     "<version>: <line>"
#include <postern/sdk.hpp>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <string>

#ifndef ECHO_VERSION
#error "ECHO_VERSION must be defined"
#endif
#define ECHO_STR2(x) #x
#define ECHO_STR(x) ECHO_STR2(x)

namespace echo {
using namespace postern::sdk;

constexpr std::string_view kVersion = ECHO_STR(ECHO_VERSION);

struct Settings {
  std::string greeting;
  int64_t tick_ms = 0;
  bool close_on_open = false;  // close inside open(), before any output
};

class Session : public LineSession {
 public:
  Session(Connection conn, const Settings& s, Host host, Host::Counter lines)
      : LineSession(conn), settings_(s), host_(host), lines_(lines) {}

  void on_open(const ConnInfo&) override {
    if (settings_.close_on_open) return conn().close();
    conn().write("HELLO echo/" + std::string(kVersion) + " " + settings_.greeting + "\r\n");
  }

  bool on_line(std::string_view line) override {
    lines_.add();
    if (line == "QUIT") {
      conn().write("BYE\r\n");
      conn().close();
    } else if (line == "DROP") {
      conn().close();
    } else if (line == "VERSION") {
      conn().write("VERSION " + std::string(kVersion) + "\r\n");
    } else if (line == "STARTTLS") {
      conn().write("GO\r\n");
      return start_tls();
    } else if (line == "INFO") {
      conn().write("INFO tls=" + std::string(info().tls_active ? "1" : "0") + " version=" + info().tls_version +
                   " sni=" + info().tls_sni + " peer=" + info().peer_addr + "\r\n");
    } else if (line.starts_with("TIMER ")) {
      Connection c = conn();
      host_.start_timer(c.handle(), std::chrono::milliseconds(number(line.substr(6))), [c](bool fired) {
        if (fired) c.write("TICK\r\n");
      });
    } else if (line.starts_with("PAUSE ")) {
      conn().write("PAUSED\r\n");
      hold();
      host_.start_timer(conn().handle(), std::chrono::milliseconds(number(line.substr(6))), [this](bool fired) {
        if (!fired) return;
        conn().write("RESUMED\r\n");
        release();
      });
    } else if (line.starts_with("FLOOD ")) {
      flood_left_ = number(line.substr(6));
      flooding_ = true;
      hold();
      flood();
    } else if (line.starts_with("BLAST ")) {
      std::string kib(1024, 'b');
      for (int i = number(line.substr(6)); i > 0; --i) conn().write(kib);
    } else if (line == "WORK") {
      auto result = std::make_shared<std::atomic<long>>(0);
      Connection c = conn();
      host_.submit(
          c.handle(),
          [result] {
            long sum = 0;
            for (long i = 1; i <= 1000; ++i) sum += i;
            *result = sum;
          },
          [c, result](bool ran) {
            if (ran) c.write("DONE " + std::to_string(result->load()) + "\r\n");
          });
    } else {
      conn().write(std::string(kVersion) + ": " + std::string(line) + "\r\n");
    }
    return true;
  }

  void on_writable() override {
    if (flooding_) flood();
  }

  bool on_line_too_long() override { return conn().write("ERR line too long\r\n"), true; }
  void on_timeout() override { conn().write("BYE idle\r\n"); }
  void on_shutdown() override {
    conn().write("BYE shutting down\r\n");
    conn().close();
  }

 private:
  static int number(std::string_view s) {
    int n = 0;
    std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
  }

  // Writes until the host says its buffer is full, then waits for
  // on_writable: output stays bounded whatever the client's speed.
  void flood() {
    while (flood_left_ > 0) {
      std::string l = "F" + std::to_string(flood_left_--);
      l.resize(1022, '.');
      if (!conn().write(l + "\r\n")) return;
    }
    flooding_ = false;
    conn().write("FLOODED\r\n");
    release();
  }

  const Settings& settings_;
  Host host_;
  Host::Counter lines_;
  int flood_left_ = 0;
  bool flooding_ = false;
};

class Plugin : public postern::sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 1> protocols{"echo"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"greeting", "tick_ms", "close_on_open"});
    settings_.close_on_open = cfg.boolean("close_on_open", false);
    settings_.greeting = cfg.string("greeting", "ready");
    if (settings_.greeting.empty() || settings_.greeting.size() > 200 ||
        settings_.greeting.find_first_of("\r\n") != std::string::npos)
      cfg["greeting"].error("must be one non-empty line of at most 200 characters");
    settings_.tick_ms = cfg.integer("tick_ms", 0, 0, 60'000);
    return cfg.error_count() == 0;
  }

  bool start(std::string&) override {
    lines_ = host().counter("echo_lines_total", "lines received");
    ticks_ = host().counter("echo_ticks_total", "periodic timer runs");
    if (settings_.tick_ms > 0) tick();
    return true;
  }

  void stop() override { stopped_ = true; }

  std::unique_ptr<ProtocolSession> open_session(std::string_view, Connection conn, const ConnInfo&) override {
    return std::make_unique<Session>(conn, settings_, host(), lines_);
  }

  std::string refusal(std::string_view, pst_refuse_reason reason) override {
    return "BUSY " + std::to_string(static_cast<int>(reason)) + "\r\n";
  }

 private:
  // A periodic timer not bound to any connection: the host must cancel it
  // when this generation retires, before unloading the image.
  void tick() {
    host().start_timer(nullptr, std::chrono::milliseconds(settings_.tick_ms), [this](bool fired) {
      if (!fired || stopped_) return;
      ticks_.add();
      tick();
    });
  }

  Settings settings_;
  Host::Counter lines_, ticks_;
  bool stopped_ = false;
};

}  // namespace echo

POSTERN_PLUGIN(echo::Plugin, "echo", "1." ECHO_STR(ECHO_VERSION) ".0")
