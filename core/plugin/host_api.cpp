// The pst_host_v1 table: the services every plugin generation receives.
// Each function validates what the plugin hands it; a plugin bug becomes
// an error status, never a host crash we could have prevented.
#include "log/logger.hpp"
#include "net/connection.hpp"
#include "net/outbound_connector.hpp"
#include "plugin/host_context.hpp"
#include "pipeline/transaction.hpp"
#include "plugin/generation.hpp"
#include "runtime/notify_hub.hpp"
#include "runtime/worker_pool.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <atomic>
#include <functional>

namespace postern::core {

// The caller's side of a service call: completes exactly once, by the
// provider's reply or by the host's timeout, whichever comes first.
struct PendingCall : std::enable_shared_from_this<PendingCall> {
  HostContext* caller = nullptr;  // null when the core itself calls
  std::function<void(pst_status, std::string_view)> done;
  boost::asio::any_io_executor executor;
  std::weak_ptr<Connection> conn;
  bool bound = false;
  std::atomic<bool> completed{false};
  std::unique_ptr<boost::asio::steady_timer> timeout;

  void complete(pst_status status, std::string reply) {
    if (completed.exchange(true)) return;
    boost::asio::post(executor, [self = shared_from_this(), status, reply = std::move(reply)] {
      if (self->timeout) self->timeout->cancel();
      auto live = self->conn.lock();
      pst_status st = self->bound && (!live || !live->open()) ? PST_ERR_CLOSED : status;
      self->done(st, reply);
      if (self->caller) self->caller->end_job();
    });
  }
};

}  // namespace postern::core

// The provider's side (pst_call*): holds the provider generation until the
// provider replies, even after the caller gave up.
struct pst_call {
  std::shared_ptr<postern::core::PendingCall> pending;
  std::shared_ptr<postern::core::Generation> provider;
};

namespace postern::core {
namespace asio = boost::asio;
namespace {

HostContext* host(pst_host_ctx* ctx) { return static_cast<HostContext*>(ctx); }
const ConfigNode* node(const pst_config* n) { return static_cast<const ConfigNode*>(n); }
Connection* conn(pst_conn* c) { return static_cast<Connection*>(c); }
std::string_view sv(pst_str s) { return s.data ? std::string_view(s.data, s.len) : std::string_view(); }

constexpr size_t kMaxLogFields = 32;

void host_log(pst_host_ctx* ctx, pst_log_level level, pst_str event, const pst_log_field* fields, size_t count) {
  if (!ctx || !Logger::instance().enabled(level)) return;
  HostContext* h = host(ctx);
  std::string generation = std::to_string(h->generation());
  LogField buf[kMaxLogFields + 2];
  size_t n = 0;
  buf[n++] = {"plugin", h->plugin()};
  buf[n++] = {"generation", generation};
  for (size_t i = 0; i < count && fields && i < kMaxLogFields; ++i) buf[n++] = {sv(fields[i].key), sv(fields[i].value)};
  Logger::instance().write(level, sv(event), std::span<const LogField>(buf, n));
}

// --- config ---

const pst_config* config_root(pst_host_ctx* ctx) { return ctx ? host(ctx)->root() : nullptr; }

pst_config_type config_type(const pst_config* c) {
  if (!c || !node(c)->node) return PST_CONFIG_NONE;
  switch (node(c)->node->type()) {
    case toml::node_type::table: return PST_CONFIG_TABLE;
    case toml::node_type::array: return PST_CONFIG_ARRAY;
    case toml::node_type::string: return PST_CONFIG_STRING;
    case toml::node_type::integer: return PST_CONFIG_INTEGER;
    case toml::node_type::floating_point: return PST_CONFIG_FLOAT;
    case toml::node_type::boolean: return PST_CONFIG_BOOLEAN;
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return PST_CONFIG_DATETIME;
    default: return PST_CONFIG_NONE;
  }
}

const pst_config* config_get(pst_host_ctx* ctx, const pst_config* table, pst_str key) {
  if (!ctx || !table || config_type(table) != PST_CONFIG_TABLE) return nullptr;
  const ConfigNode* t = node(table);
  std::string_view k = sv(key);
  // Only keys the plugin can see (host keys are hidden at the root).
  if (std::find(t->keys.begin(), t->keys.end(), k) == t->keys.end()) return nullptr;
  return host(ctx)->child(t, t->node->as_table()->get(k), t->path + "." + std::string(k));
}

size_t config_size(const pst_config* c) {
  if (!c || !node(c)->node) return 0;
  if (node(c)->node->is_array()) return node(c)->node->as_array()->size();
  return node(c)->keys.size();
}

const pst_config* config_at(pst_host_ctx* ctx, const pst_config* c, size_t index) {
  if (!ctx || !c || !node(c)->node || !node(c)->node->is_array()) return nullptr;
  const toml::array* a = node(c)->node->as_array();
  if (index >= a->size()) return nullptr;
  return host(ctx)->child(node(c), a->get(index), node(c)->path + "[" + std::to_string(index) + "]");
}

pst_status config_key_at(const pst_config* c, size_t index, pst_str* out) {
  if (!c || !out || index >= node(c)->keys.size()) return PST_ERR_NOT_FOUND;
  const std::string& k = node(c)->keys[index];
  *out = pst_str{k.data(), k.size()};
  return PST_OK;
}

template <class T>
const T* value_of(const pst_config* c) {
  if (!c || !node(c)->node) return nullptr;
  auto* v = node(c)->node->as<T>();
  return v ? &v->get() : nullptr;
}

pst_status config_string(const pst_config* c, pst_str* out) {
  auto* v = value_of<std::string>(c);
  if (!out) return PST_ERR_INVALID;
  if (!v) return c ? PST_ERR_TYPE : PST_ERR_NOT_FOUND;
  *out = pst_str{v->data(), v->size()};
  return PST_OK;
}

pst_status config_integer(const pst_config* c, int64_t* out) {
  auto* v = value_of<int64_t>(c);
  if (!out) return PST_ERR_INVALID;
  if (!v) return c ? PST_ERR_TYPE : PST_ERR_NOT_FOUND;
  *out = *v;
  return PST_OK;
}

pst_status config_float(const pst_config* c, double* out) {
  if (!out) return PST_ERR_INVALID;
  if (auto* v = value_of<double>(c)) {
    *out = *v;
    return PST_OK;
  }
  if (auto* v = value_of<int64_t>(c)) {
    *out = static_cast<double>(*v);
    return PST_OK;
  }
  return c ? PST_ERR_TYPE : PST_ERR_NOT_FOUND;
}

pst_status config_boolean(const pst_config* c, uint32_t* out) {
  auto* v = value_of<bool>(c);
  if (!out) return PST_ERR_INVALID;
  if (!v) return c ? PST_ERR_TYPE : PST_ERR_NOT_FOUND;
  *out = *v ? 1 : 0;
  return PST_OK;
}

void config_error(pst_host_ctx* ctx, const pst_config* c, pst_str message) {
  if (ctx) host(ctx)->config_error(node(c), std::string(sv(message)));
}

// --- timers ---

pst_status timer_start(pst_host_ctx* ctx, pst_conn* c, uint64_t delay_ms, pst_timer_fn fn, void* user,
                       uint64_t* id_out) {
  if (!ctx || !fn) return PST_ERR_INVALID;
  HostContext* h = host(ctx);
  if (c && !conn(c)->open()) return PST_ERR_CLOSED;
  auto op = std::make_shared<TimerOp>(c ? conn(c)->executor() : h->main_loop().get_executor());
  op->fn = fn;
  op->user = user;
  op->id = h->next_timer_id();
  if (c) {
    op->conn = conn(c)->weak_from_this();
    op->bound = true;
  }
  if (!h->add_timer(op)) return PST_ERR_CLOSED;
  if (c) conn(c)->bind_timer(op);
  if (id_out) *id_out = op->id;
  auto delay = std::chrono::milliseconds(std::min<uint64_t>(delay_ms, 86'400'000ull * 365));
  // Armed on the timer's own executor: an unbound timer may be started
  // from a worker thread, and a steady_timer is not thread-safe.
  asio::dispatch(op->timer.get_executor(), [h, op, delay] {
    if (op->cancelled) {
      h->finish_timer(op, PST_ERR_CANCELLED);
      return;
    }
    op->timer.expires_after(delay);
    op->timer.async_wait([h, op](const boost::system::error_code& ec) {
      auto live = op->conn.lock();
      bool gone = op->bound && (!live || !live->open());
      h->finish_timer(op, ec || op->cancelled || gone ? PST_ERR_CANCELLED : PST_OK);
    });
  });
  return PST_OK;
}

pst_status timer_cancel(pst_host_ctx* ctx, uint64_t id) {
  if (!ctx) return PST_ERR_INVALID;
  auto op = host(ctx)->find_timer(id);
  if (!op) return PST_ERR_NOT_FOUND;
  op->cancelled = true;
  asio::post(op->timer.get_executor(), [op] { op->timer.cancel(); });
  return PST_OK;
}

// --- worker pool ---

pst_status work_submit(pst_host_ctx* ctx, pst_conn* c, pst_work_fn work, pst_work_done_fn done, void* user) {
  if (!ctx || !work || !done) return PST_ERR_INVALID;
  HostContext* h = host(ctx);
  if (c && !conn(c)->open()) return PST_ERR_CLOSED;
  if (!h->begin_job()) return PST_ERR_CLOSED;
  std::weak_ptr<Connection> weak = c ? conn(c)->weak_from_this() : std::weak_ptr<Connection>();
  asio::any_io_executor ex = c ? conn(c)->executor() : h->main_loop().get_executor();
  bool bound = c != nullptr;
  bool queued = h->workers().submit([h, work, done, user, weak, ex, bound] {
    // A retiring generation's queued jobs are skipped, not run.
    bool cancelled = h->retiring();
    if (!cancelled) work(user);
    asio::post(ex, [h, done, user, weak, bound, cancelled] {
      // A job whose connection closed meanwhile must not touch it.
      auto live = weak.lock();
      pst_status st = cancelled ? PST_ERR_CANCELLED
                      : bound && (!live || !live->open()) ? PST_ERR_CLOSED
                                                          : PST_OK;
      done(user, st);
      h->end_job();
    });
  });
  if (!queued) {
    h->end_job();
    return PST_ERR_LIMIT;
  }
  return PST_OK;
}

// --- counters ---

pst_status counter_register(pst_host_ctx* ctx, pst_str name, pst_str help, uint32_t* id_out) {
  if (!ctx || !id_out || name.len == 0 || name.len > 128) return PST_ERR_INVALID;
  uint32_t id = host(ctx)->add_counter(std::string(sv(name)), std::string(sv(help)));
  if (id == UINT32_MAX) return PST_ERR_LIMIT;
  *id_out = id;
  return PST_OK;
}

void counter_add(pst_host_ctx* ctx, uint32_t id, uint64_t delta) {
  if (ctx) host(ctx)->counter_add(id, delta);
}

// --- connection I/O ---

pst_status conn_write(pst_conn* c, const uint8_t* data, size_t len) {
  if (!c || (!data && len)) return PST_ERR_INVALID;
  return conn(c)->write(data, len);
}
pst_status conn_start_tls(pst_conn* c) { return c ? conn(c)->start_tls() : PST_ERR_INVALID; }
pst_status conn_close(pst_conn* c) { return c ? conn(c)->close() : PST_ERR_INVALID; }
pst_status conn_pause(pst_conn* c) { return c ? conn(c)->pause() : PST_ERR_INVALID; }
pst_status conn_resume(pst_conn* c) { return c ? conn(c)->resume() : PST_ERR_INVALID; }
pst_status conn_set_timeout(pst_conn* c, uint64_t ms) { return c ? conn(c)->set_timeout(ms) : PST_ERR_INVALID; }
pst_status conn_set_read_limit(pst_conn* c, size_t n) { return c ? conn(c)->set_read_limit(n) : PST_ERR_INVALID; }

std::string_view kNoService = "no enabled plugin provides this service";

// Routes a call to the current provider of service, completing it exactly
// once on the pending call's executor (reply, timeout or no provider).
void dispatch_call(const std::shared_ptr<PendingCall>& pending, const ServiceDirectory* dir,
                   std::chrono::milliseconds timeout, const std::string& service, pst_str method,
                   const uint8_t* request, size_t len) {
  pending->timeout = std::make_unique<asio::steady_timer>(pending->executor, timeout);
  pending->timeout->async_wait([weak = std::weak_ptr<PendingCall>(pending)](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto p = weak.lock()) p->complete(PST_ERR_RETRYABLE, "the service did not answer in time");
  });
  if (BuiltinService* builtin = dir ? dir->builtin(service) : nullptr) {
    builtin->handle(std::string_view(method.data, method.len),
                    std::string_view(reinterpret_cast<const char*>(request), len),
                    [pending](pst_status status, std::string reply) { pending->complete(status, std::move(reply)); });
    return;
  }
  auto binding = dir ? dir->find_service(service) : std::nullopt;
  if (!binding) {
    pending->complete(PST_ERR_NOT_FOUND, std::string(kNoService));
    return;
  }
  auto* handle = new pst_call{pending, binding->generation};
  binding->table->handle(binding->generation->instance(), handle, method, request, len);
}

pst_status call(pst_host_ctx* ctx, pst_conn* c, pst_str service, pst_str method, const uint8_t* request, size_t len,
                pst_call_done_fn done, void* user) {
  if (!ctx || !done || (!request && len)) return PST_ERR_INVALID;
  HostContext* h = host(ctx);
  if (c && !conn(c)->open()) return PST_ERR_CLOSED;
  if (!h->begin_job()) return PST_ERR_CLOSED;
  auto pending = std::make_shared<PendingCall>();
  pending->caller = h;
  pending->done = [done, user](pst_status st, std::string_view reply) {
    done(user, st, reinterpret_cast<const uint8_t*>(reply.data()), reply.size());
  };
  pending->executor = c ? conn(c)->executor() : h->main_loop().get_executor();
  pending->conn = c ? conn(c)->weak_from_this() : std::weak_ptr<Connection>();
  pending->bound = c != nullptr;
  dispatch_call(pending, h->services().services, h->services().call_timeout, std::string(sv(service)), method,
                request, len);
  return PST_OK;
}

void call_reply(pst_call* handle, pst_status status, const uint8_t* reply, size_t len) {
  if (!handle) return;
  handle->pending->complete(status, reply ? std::string(reinterpret_cast<const char*>(reply), len) : std::string());
  delete handle;  // releases the provider's generation (possibly retiring it)
}

// --- notifications (1.1) ---

pst_status subscribe(pst_host_ctx* ctx, pst_conn* c, pst_str topic, pst_notify_fn fn, void* user, uint64_t* id_out) {
  if (!ctx || !fn || !id_out) return PST_ERR_INVALID;
  HostContext* h = host(ctx);
  NotifyHub* hub = h->services().notify;
  if (!hub) return PST_ERR_UNSUPPORTED;
  if (c && !conn(c)->open()) return PST_ERR_CLOSED;
  if (h->retiring()) return PST_ERR_CLOSED;
  auto sub = std::make_shared<NotifyHub::Subscriber>();
  sub->executor = c ? conn(c)->executor() : h->main_loop().get_executor();
  sub->owner = h;
  std::weak_ptr<Connection> weak = c ? conn(c)->weak_from_this() : std::weak_ptr<Connection>();
  bool bound = c != nullptr;
  sub->deliver = [h, fn, user, weak, bound](const std::string& t, const std::string& payload) {
    if (bound) {
      auto live = weak.lock();
      if (!live || !live->open()) return;
    }
    if (!h->begin_job()) return;  // retiring: no more plugin code
    fn(user, pst_str{t.data(), t.size()}, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    h->end_job();
  };
  uint64_t id = hub->subscribe(std::string(sv(topic)), sub);
  if (h->retiring()) {  // retire's unsubscribe_owner may have run before the insert
    hub->unsubscribe(id);
    return PST_ERR_CLOSED;
  }
  if (c) conn(c)->bind_subscription(hub, id);
  *id_out = id;
  return PST_OK;
}

pst_status unsubscribe(pst_host_ctx* ctx, uint64_t id) {
  if (!ctx || !host(ctx)->services().notify) return PST_ERR_INVALID;
  host(ctx)->services().notify->unsubscribe(id);
  return PST_OK;
}

void publish(pst_host_ctx* ctx, pst_str topic, const uint8_t* payload, size_t len) {
  if (!ctx || !host(ctx)->services().notify) return;
  std::string bytes = payload ? std::string(reinterpret_cast<const char*>(payload), len) : std::string();
  host(ctx)->services().notify->publish(std::string(sv(topic)), bytes);
}

pst_status server_path(pst_host_ctx* ctx, pst_server_path which, pst_str* out) {
  if (!ctx || !out) return PST_ERR_INVALID;
  const HostServices& s = host(ctx)->services();
  const std::string* p = which == PST_PATH_DATA_DIR ? &s.data_dir : which == PST_PATH_RUNTIME_DIR ? &s.runtime_dir : nullptr;
  if (!p) return PST_ERR_INVALID;
  *out = pst_str{p->data(), p->size()};
  return PST_OK;
}

// --- the message pipeline (1.2) ---

// The protocol's handle, or (for reads) a filter's ask of it.
Transaction* txn(pst_txn* t) {
  if (!t) return nullptr;
  if (t->kind == pst_txn::transaction) return static_cast<Transaction*>(t);
  if (t->kind == pst_txn::ask) return static_cast<Ask*>(t)->txn.get();
  return nullptr;
}
const Ask* ask(pst_txn* t) { return t && t->kind == pst_txn::ask ? static_cast<Ask*>(t) : nullptr; }
Transaction* own(pst_txn* t) { return t && t->kind == pst_txn::transaction ? static_cast<Transaction*>(t) : nullptr; }

pst_txn* txn_begin(pst_host_ctx* ctx, pst_conn* c) {
  if (!ctx || (c && !conn(c)->open())) return nullptr;
  const ServiceDirectory* dir = host(ctx)->services().services;
  auto [filters, settings] = dir ? dir->pipeline() : std::pair<std::vector<FilterBinding>, PipelineSettings>{};
  if (!c) {  // 1.4: a transaction of no connection (the outbound stage)
    auto t = std::make_shared<Transaction>(host(ctx), std::weak_ptr<Connection>(), host(ctx)->main_loop().get_executor(),
                                           0, std::move(filters), settings);
    t->adopt(t);
    return t.get();
  }
  Connection* cn = conn(c);
  auto t = std::make_shared<Transaction>(host(ctx), cn->weak_from_this(), cn->executor(), cn->id(),
                                         std::move(filters), settings);
  t->set_host_field("peer", cn->peer());
  t->set_host_field("peer_port", std::to_string(cn->peer_port()));
  t->set_host_field("listener", cn->listener_name());
  t->adopt(t);
  return t.get();
}
void txn_end(pst_txn* t) {
  if (auto* x = own(t)) x->end_on_its_thread();
}
pst_status txn_set(pst_txn* t, pst_str field, pst_str value) {
  auto* x = own(t);
  return x ? x->set(sv(field), sv(value)) : PST_ERR_INVALID;
}
pst_status txn_get(pst_txn* t, pst_str field, size_t index, pst_str* out) {
  auto* x = txn(t);
  return x && out ? x->get(sv(field), index, out) : PST_ERR_INVALID;
}
pst_status txn_run(pst_txn* t, pst_stage stage, pst_stage_done_fn done, void* user) {
  auto* x = own(t);
  return x ? x->run(stage, done, user) : PST_ERR_INVALID;
}
pst_status txn_add_header(pst_txn* t, pst_str name, pst_str value) {
  auto* a = ask(t);
  return a ? a->txn->add_header(*a, sv(name), sv(value)) : PST_ERR_UNSUPPORTED;
}
pst_status txn_add_result(pst_txn* t, pst_str result) {
  auto* a = ask(t);
  return a ? a->txn->add_result(*a, sv(result)) : PST_ERR_UNSUPPORTED;
}
pst_status txn_add_score(pst_txn* t, int32_t delta) {
  auto* a = ask(t);
  return a ? a->txn->add_score(*a, delta) : PST_ERR_UNSUPPORTED;
}

pst_status txn_replace_message(pst_txn* t, pst_str message) {
  auto* a = ask(t);
  return a ? a->txn->replace_message(*a, sv(message)) : PST_ERR_UNSUPPORTED;
}
pst_status txn_add_rcpt(pst_txn* t, pst_str address) {
  auto* a = ask(t);
  return a ? a->txn->change_rcpt(*a, sv(address), true) : PST_ERR_UNSUPPORTED;
}
pst_status txn_del_rcpt(pst_txn* t, pst_str address) {
  auto* a = ask(t);
  return a ? a->txn->change_rcpt(*a, sv(address), false) : PST_ERR_UNSUPPORTED;
}

pst_status conn_connect(pst_host_ctx* ctx, const pst_connect_v1* request) {
  if (!ctx || !request) return PST_ERR_INVALID;
  OutboundConnector* connector = host(ctx)->services().connector;
  return connector ? connector->connect(*host(ctx), *request) : PST_ERR_UNSUPPORTED;
}

pst_status conn_post(pst_host_ctx* ctx, pst_conn* c, pst_timer_fn fn, void* user) {
  if (!ctx || !c || !fn) return PST_ERR_INVALID;
  HostContext* h = host(ctx);
  if (!h->begin_job()) return PST_ERR_CLOSED;
  std::weak_ptr<Connection> weak = conn(c)->weak_from_this();
  asio::post(conn(c)->executor(), [h, fn, user, weak] {
    auto live = weak.lock();
    fn(user, live && live->open() ? PST_OK : PST_ERR_CLOSED);
    h->end_job();
  });
  return PST_OK;
}

const pst_host_v1 kHostApi = {
    sizeof(pst_host_v1), PST_ABI_MAJOR,  PST_ABI_MINOR,  host_log,       config_root,      config_type,
    config_get,          config_size,    config_at,      config_key_at,  config_string,    config_integer,
    config_float,        config_boolean, config_error,   timer_start,    timer_cancel,     work_submit,
    counter_register,    counter_add,    conn_write,     conn_start_tls, conn_close,       conn_pause,
    conn_resume,         conn_set_timeout, conn_set_read_limit, call,     call_reply,       subscribe,
    unsubscribe,         publish,        server_path,    txn_begin,      txn_end,          txn_set,
    txn_get,             txn_run,        txn_add_header, txn_add_result, txn_add_score,
    txn_replace_message, txn_add_rcpt,   txn_del_rcpt,   conn_connect,   conn_post,
};

}  // namespace

const pst_host_v1* host_api() { return &kHostApi; }

void call_service(const ServiceDirectory& services, boost::asio::io_context& reply_on, const std::string& service,
                  const std::string& method, const std::string& request, std::chrono::milliseconds timeout,
                  std::function<void(pst_status, std::string_view)> done) {
  auto pending = std::make_shared<PendingCall>();
  pending->done = std::move(done);
  pending->executor = reply_on.get_executor();
  dispatch_call(pending, &services, timeout, service, pst_str{method.data(), method.size()},
                reinterpret_cast<const uint8_t*>(request.data()), request.size());
}

}  // namespace postern::core
