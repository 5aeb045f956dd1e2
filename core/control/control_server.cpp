#include "control/control_server.hpp"

#include "log/logger.hpp"

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace postern::core {
namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {
constexpr size_t kMaxRequest = 4096;
constexpr std::chrono::seconds kRequestTimeout{10};

struct ControlSession : std::enable_shared_from_this<ControlSession> {
  ControlSession(local::socket s) : socket(std::move(s)), buffer(kMaxRequest), timer(socket.get_executor()) {}
  local::socket socket;
  asio::streambuf buffer;
  asio::steady_timer timer;
  std::string reply;
};

// Only root and the daemon's own user may talk to it, whatever the mode
// bits of the socket say.
bool peer_allowed(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == geteuid();
}
}  // namespace

ControlServer::ControlServer(asio::io_context& main, std::string path, Handler handler)
    : acceptor_(main), retry_(main), path_(std::move(path)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
  if (bound_) ::unlink(path_.c_str());
}

bool ControlServer::bind(std::string& error) {
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      error = "control socket path " + path_ + " exists and is not a socket";
      return false;
    }
    local::socket probe(acceptor_.get_executor());
    boost::system::error_code ec;
    probe.connect(local::endpoint(path_), ec);
    if (!ec) {
      error = "another posternd is running on control socket " + path_;
      return false;
    }
    ::unlink(path_.c_str());
  }
  boost::system::error_code ec;
  // umask makes the socket owner-only from its first instant.
  mode_t old = ::umask(0177);
  acceptor_.open(local(), ec);
  if (!ec) acceptor_.bind(local::endpoint(path_), ec);
  ::umask(old);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) {
    error = "cannot create control socket " + path_ + ": " + ec.message();
    return false;
  }
  bound_ = true;
  return true;
}

bool ControlServer::chown_to(uid_t uid, gid_t gid, std::string& error) {
  if (::lchown(path_.c_str(), uid, gid) != 0) {
    error = "cannot chown control socket " + path_ + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

void ControlServer::start() { accept(); }

void ControlServer::stop() {
  stopped_ = true;
  retry_.cancel();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, local::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {  // EMFILE and friends: retrying at once would spin
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](const boost::system::error_code& e) {
        if (!e && !stopped_) accept();
      });
      return;
    }
    {
      if (!peer_allowed(socket.native_handle())) {
        log_warning("control.refused", {{"reason", "peer is neither root nor the daemon's user"}});
      } else {
        auto s = std::make_shared<ControlSession>(std::move(socket));
        s->timer.expires_after(kRequestTimeout);
        s->timer.async_wait([s](const boost::system::error_code& e) {
          if (!e) s->socket.close();
        });
        asio::async_read_until(s->socket, s->buffer, '\n', [this, s](const boost::system::error_code& e, size_t n) {
          // The deadline was for reading the request; the work itself may
          // take as long as the service allows (call_timeout).
          s->timer.cancel();
          if (e == asio::error::not_found) {
            s->reply = "error\nrequest too long (at most 4096 bytes)\n";
            asio::async_write(s->socket, asio::buffer(s->reply), [s](const boost::system::error_code&, size_t) {
              boost::system::error_code ignored;
              s->socket.close(ignored);
            });
            return;
          }
          if (e) return;
          std::string line(asio::buffers_begin(s->buffer.data()), asio::buffers_begin(s->buffer.data()) + n - 1);
          handler_(line, [s](bool ok, std::string body) {
            s->reply = (ok ? "ok\n" : "error\n") + body;
            if (!s->reply.empty() && s->reply.back() != '\n') s->reply += '\n';
            asio::async_write(s->socket, asio::buffer(s->reply), [s](const boost::system::error_code&, size_t) {
              s->timer.cancel();
              boost::system::error_code ignored;
              s->socket.close(ignored);
            });
          });
        });
      }
    }
    accept();
  });
}

}  // namespace postern::core
