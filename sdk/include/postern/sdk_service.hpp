// Services for C++ plugins (ABI 1.1): the provider's side of a call.
#pragma once

#include <postern/abi.h>
#include <postern/sdk_host.hpp>

#include <atomic>
#include <memory>
#include <string_view>

namespace postern::sdk {

// The one answer to one call. Sending twice is ignored; a Reply destroyed
// without an answer sends PST_ERR, so a caller is never left waiting.
// Any thread. Hand it around as a shared_ptr (std::function needs copies).
class Reply {
 public:
  Reply(const pst_host_v1* api, pst_call* call) : api_(api), call_(call) {}
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply() { send(PST_ERR, "the service dropped the call"); }

  void send(pst_status status, std::string_view bytes) {
    pst_call* call = call_.exchange(nullptr);  // whoever takes it answers; any other send is ignored
    if (call) api_->call_reply(call, status, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  void ok(std::string_view bytes) { send(PST_OK, bytes); }
  void error(pst_status status, std::string_view message) { send(status, message); }
  bool sent() const { return call_.load() == nullptr; }

 private:
  const pst_host_v1* api_;
  std::atomic<pst_call*> call_;
};

using ReplyPtr = std::shared_ptr<Reply>;

}  // namespace postern::sdk
