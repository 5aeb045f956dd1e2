#include "metrics/metrics_server.hpp"

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <istream>

namespace postern::core {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr size_t kMaxRequest = 8192;
constexpr size_t kMaxActive = 16;
constexpr auto kTimeout = std::chrono::seconds(5);

std::string response(const std::string& status, const std::string& body, bool head) {
  std::string out = "HTTP/1.1 " + status + "\r\n";
  out += status.starts_with("200") ? "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                   : "Content-Type: text/plain; charset=utf-8\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  return head ? out : out + body;
}
}  // namespace

struct MetricsServer::Exchange {
  explicit Exchange(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()), request(kMaxRequest) {}
  tcp::socket socket;
  asio::steady_timer timer;
  asio::streambuf request;
  std::string reply;
};

MetricsServer::MetricsServer(asio::io_context& main, Render render)
    : main_(main), acceptor_(main), render_(std::move(render)) {}

bool MetricsServer::bind(const std::string& address, uint16_t port, std::string& error) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    error = "metrics address " + address + " is not an IP address";
    return false;
  }
  tcp::endpoint at(ip, port);
  acceptor_.open(at.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) {
    error = "cannot listen for metrics on " + address + ":" + std::to_string(port) + ": " + ec.message();
    return false;
  }
  return true;
}

uint16_t MetricsServer::port() const {
  boost::system::error_code ec;
  auto at = acceptor_.local_endpoint(ec);
  return ec ? 0 : at.port();
}

void MetricsServer::start() { accept(); }

void MetricsServer::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void MetricsServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (stopped_) return;
    if (ec) {  // out of descriptors, for one: try again, not in a tight loop
      auto retry = std::make_shared<asio::steady_timer>(main_, std::chrono::milliseconds(100));
      retry->async_wait([this, retry](const boost::system::error_code&) {
        if (!stopped_) accept();
      });
      return;
    }
    accept();
    if (active_ >= kMaxActive) return;  // the socket closes as it goes out of scope
    ++active_;
    auto x = std::make_shared<Exchange>(std::move(socket));
    x->timer.expires_after(kTimeout);
    x->timer.async_wait([x](const boost::system::error_code& e) {
      if (e) return;  // cancelled: answered in time
      boost::system::error_code ignored;
      x->socket.close(ignored);
    });
    asio::async_read_until(x->socket, x->request, "\r\n\r\n",
                           [this, x](const boost::system::error_code& e, size_t) {
                             if (e) {  // too long, closed, timed out
                               --active_;
                               x->timer.cancel();
                               return;
                             }
                             answer(x);
                           });
  });
}

void MetricsServer::answer(const std::shared_ptr<Exchange>& x) {
  std::istream in(&x->request);
  std::string method, target, version;
  in >> method >> target >> version;
  bool head = method == "HEAD";
  if (method != "GET" && !head) x->reply = response("405 Method Not Allowed", "GET /metrics\n", false);
  else if (target != "/metrics" && !target.starts_with("/metrics?"))
    x->reply = response("404 Not Found", "see /metrics\n", head);
  else x->reply = response("200 OK", render_(), head);
  asio::async_write(x->socket, asio::buffer(x->reply), [this, x](const boost::system::error_code&, size_t) {
    --active_;
    x->timer.cancel();
    boost::system::error_code ignored;
    x->socket.shutdown(tcp::socket::shutdown_both, ignored);
    x->socket.close(ignored);
  });
}

}  // namespace postern::core
