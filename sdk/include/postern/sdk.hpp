// The C++20 layer of the Postern SDK: what plugin authors write against.
//
// Header-only and compiled into each plugin, so no C++ type ever crosses
// the boundary: everything here is a thin wrapper over abi.h. Hooks the
// host calls are trampolines that catch every exception, log it, and turn
// it into an error status (an exception never unwinds into the host).
//
// A plugin: derive from postern::sdk::Plugin, override configure(), and
// (for a protocol) list `static constexpr std::array protocols{...}` and
// override open_session(); (for services) list `static constexpr std::array
// services{...}` and override handle_call(). Then, in one .cpp file:
//     POSTERN_PLUGIN(MyPlugin, "name", "1.2.3")
// Build it with postern_add_plugin() (sdk/cmake), which sets
// -fvisibility=hidden and -fno-gnu-unique: both matter for hot reload.
#pragma once

#include <postern/abi.h>
#include <postern/sdk_config.hpp>
#include <postern/sdk_filter.hpp>
#include <postern/sdk_host.hpp>
#include <postern/sdk_protocol.hpp>
#include <postern/sdk_service.hpp>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace postern::sdk {

namespace detail {
template <class P>
struct Registry;
}

class Plugin {
 public:
  virtual ~Plugin() = default;

  // Reads and validates the plugin's [plugins.NAME] table. Report every
  // problem with cfg.error()/Config helpers; return false when any was
  // found. No side effects: `posternd --check` runs this and nothing else.
  virtual bool configure(Config cfg) = 0;
  // Acquires resources and starts periodic work. Fill error on failure.
  virtual bool start(std::string& /*error*/) { return true; }
  // The generation is retiring (reload or shutdown); stop periodic work.
  virtual void stop() {}
  // For protocol plugins: a session for one connection, or nullptr.
  virtual std::unique_ptr<ProtocolSession> open_session(std::string_view /*protocol*/,
                                                        Connection /*conn*/,
                                                        const ConnInfo& /*info*/) {
    return nullptr;
  }
  // For protocol plugins: the refusal line for a connection the host will
  // close without a session (listener full, server stopping). Empty = none.
  virtual std::string refusal(std::string_view /*protocol*/, pst_refuse_reason /*reason*/) {
    return {};
  }

  // For service plugins: answer through reply, exactly once, now or later
  // and from any thread (typically a worker job). Runs on a loop thread:
  // never block here.
  virtual void handle_call(std::string_view /*service*/, std::string_view /*method*/,
                           std::string_view /*request*/, ReplyPtr reply) {
    reply->error(PST_ERR_UNSUPPORTED, "no such service");
  }

  // For filter plugins: judge one stage of a transaction; answer through
  // verdict exactly once, now or later, from any thread. Mutations (headers,
  // Authentication-Results, score) go through txn before the verdict.
  virtual void on_stage(std::string_view /*filter*/, pst_stage /*stage*/, FilterTxn /*txn*/, VerdictPtr verdict) {
    verdict->cont();
  }

  Host& host() { return host_; }

 private:
  template <class P>
  friend struct detail::Registry;
  Host host_;
};

namespace detail {

inline void fill_error(pst_error* err, std::string_view message) {
  if (err == nullptr || err->buf == nullptr) return;
  size_t n = message.size() < err->cap ? message.size() : err->cap;
  for (size_t i = 0; i < n; ++i) err->buf[i] = message[i];
  err->len = n;
}

// Everything one plugin type hands the host. Static storage in the plugin's
// own image (hidden visibility, no gnu-unique), built on first entry.
template <class P>
struct Registry {
  static constexpr size_t protocol_count = [] {
    if constexpr (requires { P::protocols.size(); }) return P::protocols.size();
    else return size_t{0};
  }();

  static constexpr size_t service_count = [] {
    if constexpr (requires { P::services.size(); }) return P::services.size();
    else return size_t{0};
  }();
  static constexpr size_t filter_count = [] {
    if constexpr (requires { P::filters.size(); }) return P::filters.size();
    else return size_t{0};
  }();

  static inline const pst_host_v1* api = nullptr;
  static inline std::array<pst_protocol_v1, protocol_count> protocols{};
  static inline std::array<pst_service_v1, service_count> services{};
  static inline std::array<pst_filter_v1, filter_count> filters{};
  static inline std::array<pst_capability_v1, protocol_count + service_count + filter_count> capabilities{};
  static inline pst_plugin_v1 descriptor{};

  static void* init(const pst_host_v1* host, pst_host_ctx* ctx, pst_error* err) noexcept {
    try {
      auto plugin = std::make_unique<P>();
      plugin->host_ = Host(host, ctx);
      int errors = 0;
      bool ok = plugin->configure(Config(host, ctx, host->config_root(ctx), &errors));
      if (!ok || errors > 0) {
        fill_error(err, "invalid configuration");
        return nullptr;
      }
      return plugin.release();
    } catch (const std::exception& e) {
      fill_error(err, e.what());
    } catch (...) {
      fill_error(err, "unknown exception in init");
    }
    return nullptr;
  }

  static pst_status start(void* instance, pst_error* err) noexcept {
    try {
      std::string message;
      if (static_cast<P*>(instance)->start(message)) return PST_OK;
      fill_error(err, message.empty() ? "start failed" : message);
    } catch (const std::exception& e) {
      fill_error(err, e.what());
    } catch (...) {
      fill_error(err, "unknown exception in start");
    }
    return PST_ERR;
  }

  static void stop(void* instance) noexcept {
    guarded(static_cast<P*>(instance)->host(), "stop", [&] { static_cast<P*>(instance)->stop(); });
  }

  static void fini(void* instance) noexcept { delete static_cast<P*>(instance); }

  static void* open(void* instance, pst_conn* conn, const pst_conn_info_v1* info) noexcept {
    auto* plugin = static_cast<P*>(instance);
    void* result = nullptr;
    guarded(plugin->host(), "open", [&] {
      ConnInfo ci(*info);
      Connection c(plugin->host(), conn);
      auto session = plugin->open_session(ci.protocol, c, ci);
      if (!session) return;
      session->attach(ci);
      session->on_open(ci);
      result = session.release();
    });
    return result;
  }

  static void refuse(void* instance, pst_conn* conn, const pst_conn_info_v1* info,
                     pst_refuse_reason reason) noexcept {
    auto* plugin = static_cast<P*>(instance);
    guarded(plugin->host(), "refuse", [&] {
      std::string line = plugin->refusal(view(info->protocol), reason);
      if (!line.empty()) Connection(plugin->host(), conn).write(line);
    });
  }

  template <size_t I>
  static void handle(void* instance, pst_call* call, pst_str method, const uint8_t* request, size_t len) noexcept {
    auto* plugin = static_cast<P*>(instance);
    auto reply = std::make_shared<Reply>(api, call);
    bool ok = guarded(plugin->host(), "handle_call", [&] {
      plugin->handle_call(P::services[I], view(method),
                          std::string_view(reinterpret_cast<const char*>(request), len), reply);
    });
    if (!ok) reply->error(PST_ERR, "the service failed");
  }

  template <size_t... I>
  static void describe_services(std::index_sequence<I...>) {
    ((services[I] = pst_service_v1{sizeof(pst_service_v1), str(P::services[I]), &handle<I>},
      capabilities[protocol_count + I] = {sizeof(pst_capability_v1), PST_CAP_SERVICE, &services[I]}),
     ...);
  }

  template <size_t I>
  static pst_status stage(void* instance, pst_txn* txn, pst_stage stage, pst_filter_done_fn done,
                          pst_verdict_v1*) noexcept {
    auto* plugin = static_cast<P*>(instance);
    auto verdict = std::make_shared<Verdict>(done, txn);
    bool ok = guarded(plugin->host(), "on_stage", [&] {
      plugin->on_stage(P::filters[I].name, stage, FilterTxn(api, txn), verdict);
    });
    if (!ok) verdict->tempfail(0, "", "", "the filter failed");
    return PST_PENDING;  // answered through done, perhaps already
  }

  template <size_t... I>
  static void describe_filters(std::index_sequence<I...>) {
    ((filters[I] = pst_filter_v1{sizeof(pst_filter_v1), str(P::filters[I].name), P::filters[I].stages,
                                 P::filters[I].actions, &stage<I>},
      capabilities[protocol_count + service_count + I] = {sizeof(pst_capability_v1), PST_CAP_FILTER, &filters[I]}),
     ...);
  }

  static const pst_plugin_v1* describe(const pst_host_v1* host, std::string_view name,
                                       std::string_view version) noexcept {
    api = host;
    if constexpr (protocol_count > 0) {
      for (size_t i = 0; i < protocol_count; ++i) {
        protocols[i] = session_table();
        protocols[i].name = str(P::protocols[i]);
        protocols[i].open = &open;
        protocols[i].refuse = &refuse;
        capabilities[i] = {sizeof(pst_capability_v1), PST_CAP_PROTOCOL, &protocols[i]};
      }
    }
    describe_services(std::make_index_sequence<service_count>());
    describe_filters(std::make_index_sequence<filter_count>());
    descriptor.struct_size = sizeof(pst_plugin_v1);
    descriptor.abi_major = PST_ABI_MAJOR;
    descriptor.abi_minor = PST_ABI_MINOR;
    descriptor.name = str(name);
    descriptor.version = str(version);
    descriptor.init = &init;
    descriptor.start = &start;
    descriptor.stop = &stop;
    descriptor.fini = &fini;
    descriptor.capabilities = capabilities.data();
    descriptor.capability_count = protocol_count + service_count + filter_count;
    return &descriptor;
  }
};

}  // namespace detail
}  // namespace postern::sdk

// Defines the two symbols the host looks for. Use once per plugin, at
// namespace scope in one .cpp file.
#define POSTERN_PLUGIN(PluginClass, plugin_name, plugin_version)                      \
  extern "C" {                                                                        \
  PST_EXPORT extern const char pst_abi_version[];                                     \
  const char pst_abi_version[] = PST_ABI_VERSION_STRING;                              \
  PST_EXPORT const pst_plugin_v1* pst_plugin_entry(const pst_host_v1* host) {         \
    return ::postern::sdk::detail::Registry<PluginClass>::describe(host, plugin_name, \
                                                                   plugin_version);   \
  }                                                                                   \
  }
