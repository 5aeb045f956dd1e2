// TLS on a connection's socket, with OpenSSL reading and writing the file
// descriptor itself (SSL_set_fd) and Asio only waiting for readiness.
//
// Why not asio::ssl::stream: each stream holds two 17 KB buffers of its own
// plus a BIO pair with two more, about 80 KB per connection whether it is
// busy or idle. Here an idle connection holds only OpenSSL's SSL object,
// whose record buffers SSL_MODE_RELEASE_BUFFERS gives back (measured with
// tools/bench/connections). The interface is the part of AsyncReadStream /
// AsyncWriteStream that Connection and asio::async_write use.
//
// Cancelling the socket (socket.cancel()) aborts a pending operation with
// operation_aborted, as with asio::ssl::stream. Completions never run
// inside the initiating call.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstddef>
#include <memory>

namespace postern::core {

class TlsSocket {
 public:
  using tcp = boost::asio::ip::tcp;
  using executor_type = tcp::socket::executor_type;

  enum class Role { server, client };

  TlsSocket(tcp::socket& socket, SSL_CTX* ctx, Role role = Role::server) : socket_(socket), ssl_(SSL_new(ctx)) {
    if (!ssl_) return;
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);  // OpenSSL must see EAGAIN, never block the loop
    if (ec || SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle())) != 1) {
      SSL_free(ssl_);
      ssl_ = nullptr;
      return;
    }
    if (role == Role::server) SSL_set_accept_state(ssl_);
    else SSL_set_connect_state(ssl_);
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  ~TlsSocket() {
    if (ssl_) SSL_free(ssl_);
  }
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  bool valid() const { return ssl_ != nullptr; }
  SSL* native_handle() const { return ssl_; }
  executor_type get_executor() { return socket_.get_executor(); }

  template <class Handler>
  void async_handshake(Handler handler) {
    run([this](size_t& n) { return n = 0, SSL_do_handshake(ssl_); },
        [handler = std::move(handler)](const boost::system::error_code& ec, size_t) mutable { handler(ec); });
  }

  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler handler) {
    auto b = first(buffers);
    run([this, b](size_t& n) { return SSL_read_ex(ssl_, b.data(), b.size(), &n); }, std::move(handler));
  }

  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler handler) {
    auto b = first(buffers);
    run([this, b](size_t& n) { return SSL_write_ex(ssl_, b.data(), b.size(), &n); }, std::move(handler));
  }

  // One read now, never waiting: would_block (want_write set when OpenSSL
  // must send first, a TLS 1.3 key update) when nothing can be read yet.
  size_t read_now(void* data, size_t size, boost::system::error_code& ec, bool& want_write) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int r = SSL_read_ex(ssl_, data, size, &n);
    want_write = false;
    if (r > 0) return ec = {}, n;
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      want_write = e == SSL_ERROR_WANT_WRITE;
      ec = boost::asio::error::would_block;
      return 0;
    }
    ec = error_of(e);
    return 0;
  }

  // Sends close_notify; does not wait for the peer's (the caller closes).
  template <class Handler>
  void async_shutdown(Handler handler) {
    run(
        [this](size_t& n) {
          n = 0;
          int r = SSL_shutdown(ssl_);
          return r >= 0 ? 1 : r;  // 0: ours sent, theirs not awaited
        },
        [handler = std::move(handler)](const boost::system::error_code& ec, size_t) mutable { handler(ec); });
  }

 private:
  template <class Buffers>
  static auto first(const Buffers& buffers) {
    return *boost::asio::buffer_sequence_begin(buffers);
  }

  // Tries op now; on WANT_READ / WANT_WRITE waits for the socket and tries
  // again. op returns OpenSSL's result and sets the byte count.
  template <class Op, class Handler>
  void run(Op op, Handler handler) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int r = op(n);
    if (r > 0) return complete(std::move(handler), {}, n);
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      auto wait = e == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
      socket_.async_wait(wait, [this, op = std::move(op), handler = std::move(handler)](
                                   const boost::system::error_code& ec) mutable {
        // A closed socket's number may already belong to a new client.
        if (ec || !socket_.is_open()) return handler(ec ? ec : boost::asio::error::operation_aborted, size_t{0});
        run(std::move(op), std::move(handler));
      });
      return;
    }
    complete(std::move(handler), error_of(e), 0);
  }

  template <class Handler>
  void complete(Handler handler, boost::system::error_code ec, size_t n) {
    boost::asio::post(socket_.get_executor(),
                      [handler = std::move(handler), ec, n]() mutable { handler(ec, n); });
  }

  static boost::system::error_code error_of(int ssl_error) {
    namespace error = boost::asio::error;
    unsigned long err = ERR_get_error();
    ERR_clear_error();  // the rest of the queue says the same; keep the thread's queue clean
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return error::eof;  // close_notify received
    // OpenSSL 3 reports a peer that closed without close_notify as an
    // SSL error with this reason; Asio calls it stream_truncated.
    if ((ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
        (ssl_error == SSL_ERROR_SYSCALL && err == 0 && errno == 0))
      return boost::asio::ssl::error::stream_truncated;
    if (ssl_error == SSL_ERROR_SYSCALL && err == 0) return {errno, boost::system::system_category()};
    if (err) return {static_cast<int>(err), error::get_ssl_category()};
    return error::connection_reset;
  }

  tcp::socket& socket_;
  SSL* ssl_;
};

}  // namespace postern::core
