#include "net/outbound_connector.hpp"

#include "net/connection.hpp"
#include "net/connection_registry.hpp"
#include "plugin/host_context.hpp"
#include "runtime/loop_pool.hpp"

#include <boost/asio/post.hpp>

namespace postern::core {
namespace asio = boost::asio;

namespace {
std::string copy(pst_str s) { return s.data ? std::string(s.data, s.len) : std::string(); }

constexpr size_t kMaxTlsa = 64;
}  // namespace

OutboundConnector::OutboundConnector(LoopPool& loops, ConnectionRegistry& registry, std::atomic<uint64_t>& ids)
    : loops_(loops), registry_(registry), ids_(ids), tls_(std::make_shared<ClientTls>()) {}

OutboundConnector::~OutboundConnector() = default;

pst_status OutboundConnector::connect(HostContext& owner, const pst_connect_v1& r) {
  if (r.struct_size < offsetof(pst_connect_v1, failed) + sizeof r.failed) return PST_ERR_INVALID;
  const pst_protocol_v1* protocol = r.protocol;
  if (!protocol || protocol->struct_size < sizeof(pst_protocol_v1) || !protocol->open || !protocol->on_data ||
      !protocol->on_close || !protocol->on_tls_ready)
    return PST_ERR_INVALID;
  if (r.tls_mode != PST_TLS_STARTTLS && r.tls_mode != PST_TLS_IMPLICIT) return PST_ERR_INVALID;
  if (r.verify > PST_VERIFY_DANE || r.tlsa_count > kMaxTlsa || (r.tlsa_count && !r.tlsa)) return PST_ERR_INVALID;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(copy(r.address), ec);
  if (ec || r.port == 0) return PST_ERR_INVALID;
  if (stopped_) return PST_ERR_CLOSED;

  auto request = std::make_unique<OutboundRequest>();
  request->endpoint = {address, r.port};
  request->plugin = owner.plugin();
  request->tls.server_name = copy(r.server_name);
  request->tls.verify = r.verify;
  request->tls.ca_file = copy(r.ca_file);
  for (size_t i = 0; i < r.tlsa_count; ++i) request->tls.tlsa.push_back(copy(r.tlsa[i]));
  request->client_tls = tls_;
  if (r.connect_timeout_ms) request->connect_timeout = std::chrono::milliseconds(r.connect_timeout_ms);
  request->protocol = protocol;
  request->user = r.user;
  request->failed = r.failed;
  request->owner = &owner;

  auto config = std::make_shared<ListenerConfig>();
  config->name = "outbound:" + owner.plugin();
  config->protocol = copy(protocol->name);
  config->tls = static_cast<pst_tls_mode>(r.tls_mode);
  config->idle_timeout = std::chrono::milliseconds(r.idle_timeout_ms ? r.idle_timeout_ms : 300'000);
  config->max_line = r.max_line ? r.max_line : 1000;

  // The job holds the generation until the connection ends (Connection::finish).
  if (!owner.begin_job()) return PST_ERR_CLOSED;
  asio::io_context& loop = loops_.next();
  auto conn = std::make_shared<Connection>(asio::ip::tcp::socket(loop), std::move(request), std::move(config),
                                           ++ids_, registry_);
  registry_.add(conn->id(), conn);
  asio::post(loop, [conn] { conn->connect(); });
  return PST_OK;
}

}  // namespace postern::core
