// The SDK's complete example: a tiny line protocol.
//
//   S: 200 <greeting>
//   C: HELLO Ada         S: 250 Hello, Ada!
//   C: STARTTLS          S: 220 go ahead   (then TLS, on tls = "starttls")
//   C: QUIT              S: 221 bye
//
// It shows every piece a protocol plugin needs: config validation with
// precise errors, a session per connection, bounded lines, STARTTLS, a
// counter, a timer bound to the connection, and a goodbye on shutdown.
#include <postern/sdk.hpp>

#include <array>
#include <chrono>
#include <string>

namespace hello {

using namespace postern::sdk;

class Session : public LineSession {
 public:
  Session(Connection conn, const std::string& greeting, Host::Counter greeted, Host host)
      : LineSession(conn), greeting_(greeting), greeted_(greeted), host_(host) {}

  void on_open(const ConnInfo&) override { conn().write("200 " + greeting_ + "\r\n"); }

  bool on_line(std::string_view line) override {
    if (line.starts_with("HELLO ") && line.size() > 6) {
      greeted_.add();
      return conn().write("250 Hello, " + std::string(line.substr(6)) + "!\r\n"), true;
    }
    if (line == "STARTTLS") {
      if (info().tls_mode != PST_TLS_STARTTLS || info().tls_active) return conn().write("502 not here\r\n"), true;
      conn().write("220 go ahead\r\n");
      return start_tls();
    }
    if (line == "LATER") {  // a timer bound to this connection
      host_.start_timer(conn().handle(), std::chrono::milliseconds(100), [c = conn()](bool fired) {
        if (fired) c.write("250 later\r\n");
      });
      return true;
    }
    if (line == "QUIT") {
      conn().write("221 bye\r\n");
      conn().close();
      return true;
    }
    conn().write("500 unknown command\r\n");
    return true;
  }

  bool on_line_too_long() override { return conn().write("500 line too long\r\n"), true; }
  void on_timeout() override { conn().write("421 idle too long\r\n"); }
  void on_shutdown() override {
    conn().write("421 shutting down\r\n");
    conn().close();
  }

 private:
  std::string greeting_;
  Host::Counter greeted_;
  Host host_;
};

class Plugin : public postern::sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 1> protocols{"hello"};

  bool configure(Config cfg) override {
    cfg.allow_keys({"greeting"});
    greeting_ = cfg.string("greeting", "hello from Postern");
    if (greeting_.size() > 200 || greeting_.find_first_of("\r\n") != std::string::npos)
      cfg["greeting"].error("must be one line of at most 200 characters");
    return cfg.error_count() == 0;
  }

  bool start(std::string&) override {
    greeted_ = host().counter("hello_greeted_total", "HELLO commands answered");
    return true;
  }

  std::unique_ptr<ProtocolSession> open_session(std::string_view, Connection conn, const ConnInfo&) override {
    return std::make_unique<Session>(conn, greeting_, greeted_, host());
  }

  std::string refusal(std::string_view, pst_refuse_reason) override { return "421 too busy, try later\r\n"; }

 private:
  std::string greeting_;
  Host::Counter greeted_;
};

}  // namespace hello

POSTERN_PLUGIN(hello::Plugin, "hello", "1.0.0")
