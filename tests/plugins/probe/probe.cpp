// Test plugin: a line protocol that lets tests call any plugin service and
// watch notifications through the SDK, the way protocol plugins will.
//
//   CALL <service> <method> <hex of request record>
//        -> "OK <hex of reply record>" | "ERR <status> <message>"
//        (one call at a time: later lines wait, in order)
//   WATCH <topic>  -> "WATCHING", then "NOTIFY <topic> <hex>" per notification
//   QUIT           -> "BYE"
#include <postern/hex.hpp>
#include <postern/sdk.hpp>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace probe {
using namespace postern::sdk;

class Session : public LineSession {
 public:
  Session(Connection conn, Host host) : LineSession(conn), host_(host) {}

  void on_open(const ConnInfo&) override { conn().write("PROBE ready\r\n"); }

  bool on_line(std::string_view line) override {
    std::vector<std::string_view> words;
    for (size_t start = 0; start <= line.size();) {
      size_t sp = line.find(' ', start);
      words.push_back(line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
      if (sp == std::string_view::npos) break;
      start = sp + 1;
    }
    if (words[0] == "QUIT") {
      conn().write("BYE\r\n");
      conn().close();
    } else if (words[0] == "CALL" && words.size() == 4) {
      call(words[1], words[2], words[3]);
    } else if (words[0] == "WATCH" && words.size() == 2) {
      Connection c = conn();
      watches_.emplace_back(host_, c.handle(), words[1], [c](std::string_view topic, std::string_view payload) {
        c.write("NOTIFY " + std::string(topic) + " " + to_hex(payload) + "\r\n");
      });
      conn().write(watches_.back().active() ? "WATCHING\r\n" : "ERR watch refused\r\n");
    } else {
      conn().write("ERR unknown command\r\n");
    }
    return true;
  }

 private:
  void call(std::string_view service, std::string_view method, std::string_view hex) {
    auto request = from_hex(hex);
    if (!request) return (void)conn().write("ERR -2 bad hex\r\n");
    hold();  // answer in order: later lines wait for this call
    bool made = host_.call(conn().handle(), service, method, *request, [this](pst_status st, std::string_view reply) {
      if (st == PST_ERR_CLOSED) return;  // the session is gone: touch nothing
      if (st == PST_OK) conn().write("OK " + to_hex(reply) + "\r\n");
      else conn().write("ERR " + std::to_string(st) + " " + std::string(reply) + "\r\n");
      release();
    });
    if (!made) {
      conn().write("ERR -1 call refused\r\n");
      release();
    }
  }

  Host host_;
  std::vector<Host::Subscription> watches_;
};

class Plugin : public postern::sdk::Plugin {
 public:
  static constexpr std::array<std::string_view, 1> protocols{"probe"};
  bool configure(Config cfg) override { return cfg.allow_keys({}); }
  std::unique_ptr<ProtocolSession> open_session(std::string_view, Connection conn, const ConnInfo&) override {
    return std::make_unique<Session>(conn, host());
  }
};

}  // namespace probe

POSTERN_PLUGIN(probe::Plugin, "probe", "1.0.0")
