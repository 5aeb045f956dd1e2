#include "clamd.hpp"

#include <arpa/inet.h>

#include <optional>

namespace postern::av {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kMaxReply = 4096;

// One reply: up to the NUL clamd ends it with (the z commands).
std::optional<std::string> read_reply(sdk::net::BlockingSocket& s, Clock::time_point deadline) {
  std::string out;
  while (out.size() < kMaxReply) {
    auto part = s.receive(512, deadline);
    if (!part || part->empty()) return std::nullopt;
    out += *part;
    if (size_t nul = out.find('\0'); nul != std::string::npos) return out.substr(0, nul);
  }
  return std::nullopt;
}

}  // namespace

ScanResult parse_reply(std::string_view reply) {
  // IDSESSION replies start with the request's number: "3: stream: OK".
  if (size_t colon = reply.find(": "); colon != std::string_view::npos && colon > 0 &&
                                       reply.substr(0, colon).find_first_not_of("0123456789") == std::string_view::npos)
    reply.remove_prefix(colon + 2);
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == ' ')) reply.remove_suffix(1);
  if (reply == "stream: OK") return {ScanResult::clean, ""};
  if (reply.starts_with("stream: ") && reply.ends_with(" FOUND")) {
    std::string name(reply.substr(8, reply.size() - 8 - 6));
    for (char& c : name)  // it goes into replies and headers: printable, no separators
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f || c == ';' || c == '"') c = '_';
    return {ScanResult::infected, name.substr(0, 200)};
  }
  if (reply.find("size limit exceeded") != std::string_view::npos) return {ScanResult::too_large, std::string(reply)};
  return {ScanResult::error, "clamd: " + std::string(reply.substr(0, 200))};
}

Clamd::Clamd(sdk::net::SocketAddress address, size_t max_idle) : address_(std::move(address)), max_idle_(max_idle) {}
Clamd::~Clamd() {
  for (Socket& s : idle_) s.send_all(std::string_view("zEND", 5), Clock::now() + std::chrono::milliseconds(50));
}

void Clamd::give_back(Socket s) {
  std::lock_guard lock(mutex_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(s));
}

ScanResult Clamd::scan_on(Socket& s, std::string_view data, Socket::Deadline deadline) {
  if (!s.send_all(std::string_view("zINSTREAM", 10), deadline)) return {ScanResult::error, "sending to clamd failed"};
  // Chunks: a 4-byte length in network order, then the bytes; length 0 ends.
  auto chunk = [&](std::string_view bytes) {
    uint32_t be = htonl(static_cast<uint32_t>(bytes.size()));
    return s.send_all(std::string_view(reinterpret_cast<const char*>(&be), 4), deadline) &&
           (bytes.empty() || s.send_all(bytes, deadline));
  };
  bool sent = true;
  for (size_t off = 0; sent && off < data.size(); off += kChunk) sent = chunk(data.substr(off, kChunk));
  if (sent) sent = chunk({});
  // Past StreamMaxLength clamd answers and closes while we still send: its
  // answer is what counts, if it left one.
  if (!sent) {
    auto early = read_reply(s, std::min(deadline, Clock::now() + std::chrono::milliseconds(200)));
    return early ? parse_reply(*early) : ScanResult{ScanResult::error, "sending to clamd failed (timed out or closed)"};
  }
  auto reply = read_reply(s, deadline);
  if (!reply) return {ScanResult::error, "no answer from clamd (timed out or closed)"};
  return parse_reply(*reply);
}

ScanResult Clamd::scan(std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::optional<Socket> reused;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      reused = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (reused) {
    ScanResult r = scan_on(*reused, data, deadline);
    if (r.kind != ScanResult::error) {
      // After a size-limit error clamd ends the session: do not reuse it.
      if (r.kind != ScanResult::too_large) give_back(std::move(*reused));
      return r;
    }
    // clamd closes idle sessions (IdleTimeout): a fresh connection gets one more try.
  }
  std::string error;
  auto fresh = Socket::connect(address_, deadline, error);
  if (!fresh) return {ScanResult::error, error};
  if (!fresh->send_all(std::string_view("zIDSESSION", 11), deadline)) return {ScanResult::error, "clamd closed the connection"};
  ScanResult r = scan_on(*fresh, data, deadline);
  if (r.kind == ScanResult::clean || r.kind == ScanResult::infected) give_back(std::move(*fresh));
  return r;
}

}  // namespace postern::av
