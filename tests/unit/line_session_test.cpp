// The SDK's C++ layer, sans-I/O: a LineSession driven through a fake host
// table, the way every protocol plugin can be tested without sockets.
#include <postern/sdk.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {
using namespace postern::sdk;

struct FakeConn {
  std::string out;
  bool tls_started = false;
  bool closed = false;
  bool paused = false;
};
FakeConn* fake(pst_conn* c) { return reinterpret_cast<FakeConn*>(c); }

pst_host_v1 fake_host() {
  pst_host_v1 h{};
  h.struct_size = sizeof h;
  h.conn_write = [](pst_conn* c, const uint8_t* d, size_t n) -> pst_status {
    fake(c)->out.append(reinterpret_cast<const char*>(d), n);
    return PST_OK;
  };
  h.conn_start_tls = [](pst_conn* c) -> pst_status {
    fake(c)->tls_started = true;
    return PST_OK;
  };
  h.conn_close = [](pst_conn* c) -> pst_status {
    fake(c)->closed = true;
    return PST_OK;
  };
  h.conn_pause = [](pst_conn* c) -> pst_status {
    fake(c)->paused = true;
    return PST_OK;
  };
  h.conn_resume = [](pst_conn* c) -> pst_status {
    fake(c)->paused = false;
    return PST_OK;
  };
  return h;
}

class Recorder : public LineSession {
 public:
  using LineSession::LineSession;
  std::vector<std::string> lines;
  int too_long = 0;
  using LineSession::hold;
  using LineSession::release;

 protected:
  bool on_line(std::string_view line) override {
    lines.emplace_back(line);
    if (line == "STARTTLS") return start_tls();
    if (line == "WAIT") hold();
    return line != "FAIL";
  }
  bool on_line_too_long() override {
    ++too_long;
    return true;
  }
};

struct Harness {
  pst_host_v1 api = fake_host();
  FakeConn conn;
  Host host{&api, nullptr};
  Recorder session{Connection(host, reinterpret_cast<pst_conn*>(&conn))};
  explicit Harness(uint32_t max_line = 16) {
    ConnInfo info;
    info.max_line = max_line;
    session.attach(info);
  }
};
}  // namespace

TEST_CASE("lines are split at LF - CR LF stripped - across arbitrary chunks") {
  Harness h;
  CHECK(h.session.on_data("ab"));
  CHECK(h.session.on_data("c\r"));
  CHECK(h.session.on_data("\nd\ne"));
  CHECK(h.session.lines == std::vector<std::string>{"abc", "d"});
  CHECK(h.session.on_data("\r\n"));
  CHECK(h.session.lines.back() == "e");
}

TEST_CASE("a line over max_line is discarded whole and reported once") {
  Harness h(8);
  CHECK(h.session.on_data("12345678\n"));  // exactly at the limit
  CHECK(h.session.on_data("123456789"));
  CHECK(h.session.on_data("0123456789\nok\n"));
  CHECK(h.session.lines == std::vector<std::string>{"12345678", "ok"});
  CHECK(h.session.too_long == 1);
}

TEST_CASE("lines pipelined after STARTTLS are dropped") {
  Harness h;
  CHECK(h.session.on_data("A\nSTARTTLS\nINJECTED\nMORE\n"));
  CHECK(h.conn.tls_started);
  CHECK(h.session.lines == std::vector<std::string>{"A", "STARTTLS"});
  ConnInfo secured;
  secured.max_line = 16;
  secured.tls_active = true;
  h.session.on_tls_ready(secured);
  CHECK(h.session.on_data("B\n"));
  CHECK(h.session.lines.back() == "B");
  CHECK(h.session.info().tls_active);
}

TEST_CASE("a session's false return is reported to the host") {
  Harness h;
  CHECK_FALSE(h.session.on_data("FAIL\nNEVER\n"));
  CHECK(h.session.lines == std::vector<std::string>{"FAIL"});
}

TEST_CASE("hold keeps pipelined lines - in order - until release") {
  Harness h;
  CHECK(h.session.on_data("A\nWAIT\nB\nC"));
  CHECK(h.session.lines == std::vector<std::string>{"A", "WAIT"});
  CHECK(h.conn.paused);
  CHECK(h.session.on_data("\nD\n"));  // anything the host still delivers is kept too
  CHECK(h.session.lines.size() == 2);
  h.session.release();
  CHECK_FALSE(h.conn.paused);
  CHECK(h.session.lines == std::vector<std::string>{"A", "WAIT", "B", "C", "D"});
}

TEST_CASE("a line that spans chunks is bounded before its end arrives") {
  Harness h(8);
  CHECK(h.session.on_data("1234"));
  CHECK(h.session.on_data("56789"));  // 9 bytes, no LF yet: dropped already
  CHECK(h.session.on_data("ABCDEFGHIJKLMNOP"));
  CHECK(h.session.on_data("\nok\n"));
  CHECK(h.session.too_long == 1);
  CHECK(h.session.lines == std::vector<std::string>{"ok"});
}
