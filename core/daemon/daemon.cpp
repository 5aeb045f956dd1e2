#include "daemon/daemon.hpp"

#include "daemon/privileges.hpp"
#include "plugin/host_context.hpp"

#include <postern/record.hpp>
#include "log/logger.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <csignal>
#include <filesystem>
#include <sstream>

namespace postern::core {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {
// After the shutdown deadline, sessions get this long to say goodbye.
constexpr std::chrono::seconds kGoodbyeGrace{6};
// After that, plugins get this long to retire and unload.
constexpr std::chrono::seconds kUnloadDeadline{10};

const char* tls_mode_name(pst_tls_mode m) {
  return m == PST_TLS_IMPLICIT ? "implicit" : m == PST_TLS_STARTTLS ? "starttls" : "none";
}

void configure_logger(const LogConfig& log) {
  Logger::instance().configure(log.json ? LogFormat::json : LogFormat::text, log.level);
}

// chmod 0750 (and chown to owner) through an O_NOFOLLOW descriptor: these
// directories belong to the unprivileged user, who must not be able to
// point root at another file with a symlink.
bool restrict_directory(const std::string& dir, const Identity* owner, std::string& error) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  bool ok = fd >= 0 && ::fchmod(fd, 0750) == 0 && (!owner || ::fchown(fd, owner->uid, owner->gid) == 0);
  if (!ok) error = "cannot secure directory " + dir + ": " + std::strerror(errno);
  if (fd >= 0) ::close(fd);
  return ok;
}

bool needs_tls(const Config& c) {
  for (const auto& l : c.listeners)
    if (l.tls != PST_TLS_NONE) return true;
  return false;
}
}  // namespace

Daemon::Daemon(Config config) : config_(std::move(config)), signals_(main_, SIGTERM, SIGINT, SIGHUP) {}

Daemon::~Daemon() {
  if (loops_) loops_->stop();
  if (workers_) workers_->stop();
}

bool Daemon::prepare_directories(std::string& error) {
  std::error_code ec;
  for (const std::string& dir : {config_.server.data_dir, config_.server.runtime_dir,
                                 config_.server.runtime_dir + "/plugins"}) {
    fs::create_directories(dir, ec);
    if (ec) {
      error = "cannot create " + dir + ": " + ec.message();
      return false;
    }
    if (!restrict_directory(dir, nullptr, error)) return false;
  }
  // Images a previous run left behind (after a crash) are never reused.
  for (auto& entry : fs::directory_iterator(config_.server.runtime_dir + "/plugins", ec))
    if (entry.path().extension() == ".so") fs::remove(entry.path(), ec);
  return true;
}

bool Daemon::start(std::string& error) {
  configure_logger(config_.log);
  if (!prepare_directories(error)) return false;
  if (needs_tls(config_) || !config_.tls.certificates.empty()) {
    tls_ = TlsStore::load(config_.tls, error);
    if (!tls_) return false;
  }

  // Privileged steps first: ports, the control socket, directory owners.
  for (const ListenerConfig& lc : config_.listeners) {
    auto provider = [this](const ListenerConfig& l) {
      AcceptSnapshot snap;
      if (stopping_ || !plugins_->current()) return snap;
      snap.binding = plugins_->current()->protocol(l.protocol);
      snap.tls = tls_;
      if (plugins_->find_service("guard")) snap.admit = guard_admission(l);
      return snap;
    };
    listeners_.push_back(
        std::make_unique<Listener>(main_, *loops_, lc, provider, registry_, connection_ids_));
    if (!listeners_.back()->bind(error)) return false;
  }
  control_ = std::make_unique<ControlServer>(
      main_, config_.server.control_socket,
      [this](const std::string& cmd, ControlServer::Reply reply) { on_control(cmd, reply); });
  if (!control_->bind(error)) return false;
  if (config_.metrics.enabled) {
    metrics_ = std::make_unique<MetricsServer>(main_, [this] { return prometheus_text(metrics()); });
    if (!metrics_->bind(config_.metrics.address, config_.metrics.port, error)) return false;
  }

  if (::geteuid() == 0 && !config_.server.user.empty()) {
    Identity id;
    if (!lookup_identity(config_.server.user, config_.server.group, id, error)) return false;
    for (const std::string& dir : {config_.server.data_dir, config_.server.runtime_dir,
                                   config_.server.runtime_dir + "/plugins"})
      if (!restrict_directory(dir, &id, error)) return false;
    if (!control_->chown_to(id.uid, id.gid, error)) return false;
    if (!drop_privileges(config_.server.user, id, error)) return false;
    log_info("privileges.dropped", {{"user", config_.server.user}, {"uid", std::to_string(id.uid)}});
  } else if (::geteuid() == 0) {
    log_warning("privileges.kept", {{"reason", "running as root without server.user"}});
  }

  // Plugins load unprivileged: their start() may create files.
  auto result = plugins_->prepare(config_);
  if (!result.set) {
    error = "plugins failed to load";
    for (const auto& e : result.errors) log_error("plugin.load_failed", {{"reason", e}});
    return false;
  }
  plugins_->commit(result.set, config_.server.drain_timeout);
  plugins_->on_drain_deadline = [this](const Generation* g) {
    registry_.for_each([g](const std::shared_ptr<Connection>& c) {
      if (c->generation() == g) c->request_shutdown();
    });
  };
  return true;
}

int Daemon::run() {
  started_at_ = std::chrono::steady_clock::now();
  workers_ = std::make_unique<WorkerPool>(config_.server.workers, config_.server.work_queue);
  loops_ = std::make_unique<LoopPool>(config_.server.threads);
  connector_ = std::make_unique<OutboundConnector>(*loops_, registry_, connection_ids_);
  HostServices services;
  services.connector = connector_.get();
  services.main = &main_;
  services.workers = workers_.get();
  services.notify = &notify_;
  services.data_dir = config_.server.data_dir;
  services.runtime_dir = config_.server.runtime_dir;
  services.call_timeout = config_.server.call_timeout;
  plugins_ = std::make_unique<PluginManager>(services, config_.server.runtime_dir + "/plugins");
  std::string error;
  resolver_ = std::make_unique<Resolver>(main_, config_.dns);
  if (!resolver_->start(error)) {
    log_error("server.start_failed", {{"reason", error}});
    plugins_.reset();
    return 1;
  }
  plugins_->add_builtin("dns", resolver_.get());
  plugins_->add_builtin("counters", &counters_);
  if (!start(error)) {
    log_error("server.start_failed", {{"reason", error}});
    plugins_.reset();
    return 1;
  }
  loops_->start();
  for (auto& l : listeners_) l->start();
  control_->start();
  if (metrics_) {
    metrics_->start();
    log_info("metrics.started", {{"address", config_.metrics.address}, {"port", std::to_string(metrics_->port())}});
  }
  scheduler_ = std::make_unique<DeliveryScheduler>(*plugins_, main_, notify_, config_.delivery,
                                                   config_.server.call_timeout);
  scheduler_->start();
  wait_for_signal();
  log_info("server.started", {{"pid", std::to_string(::getpid())}, {"config", config_.path},
                              {"loops", std::to_string(loops_->size())},
                              {"control_socket", config_.server.control_socket}});
  notify_systemd("READY=1");
  main_.run();
  loops_->stop();
  workers_->stop();
  log_info("server.stopped");
  return 0;
}

void Daemon::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reload([](bool, std::string) {});
    } else {
      begin_shutdown();
    }
    if (!finished_) wait_for_signal();
  });
}

std::string Daemon::restart_required(const Config& next) const {
  const ServerConfig &a = config_.server, &b = next.server;
  if (a.user != b.user || a.group != b.group || a.data_dir != b.data_dir || a.runtime_dir != b.runtime_dir ||
      a.plugin_dir != b.plugin_dir || a.control_socket != b.control_socket || a.threads != b.threads ||
      a.workers != b.workers || a.work_queue != b.work_queue || a.call_timeout != b.call_timeout)
    return "[server] settings other than the timeouts changed: restart posternd to apply them";
  const DnsConfig &d = config_.dns, &e = next.dns;
  if (d.servers != e.servers || d.timeout != e.timeout || d.tries != e.tries || d.cache_entries != e.cache_entries ||
      d.max_ttl != e.max_ttl || d.negative_ttl != e.negative_ttl)
    return "[dns] changed: restart posternd to apply it";
  if (next.listeners.size() != config_.listeners.size())
    return "listeners were added or removed: restart posternd to apply that";
  for (size_t i = 0; i < next.listeners.size(); ++i) {
    const auto& n = next.listeners[i];
    const auto& o = config_.listeners[i];
    if (n.name != o.name || !n.same_socket(o))
      return "listener \"" + n.name + "\" changed its address or port: restart posternd to apply that";
  }
  return {};
}

void Daemon::reload(const ControlServer::Reply& reply) {
  auto fail = [&](const std::string& why) {
    log_error("reload.failed", {{"reason", why}});
    reply(false, why);
  };
  if (stopping_) return fail("the server is shutting down");
  notify_systemd("RELOADING=1");
  log_info("reload.started", {{"config", config_.path}});
  ConfigResult loaded = load_config(config_.path);
  if (!loaded.config) {
    std::string why = "configuration is invalid:";
    for (const auto& e : loaded.errors) why += "\n" + e.to_string();
    notify_systemd("READY=1");
    return fail(why);
  }
  Config next = std::move(*loaded.config);
  std::string why = restart_required(next);
  std::shared_ptr<TlsStore> tls;
  if (why.empty() && (needs_tls(next) || !next.tls.certificates.empty())) tls = TlsStore::load(next.tls, why);
  PrepareResult plugins;
  if (why.empty()) {
    plugins = plugins_->prepare(next);
    if (!plugins.set) {
      why = "plugins failed:";
      for (const auto& e : plugins.errors) why += "\n" + e;
    }
  }
  notify_systemd("READY=1");
  if (!why.empty()) return fail(why);

  // Every step succeeded: swap. New connections use the new set; sessions
  // keep the generations and TLS contexts they started with.
  tls_ = tls;
  for (size_t i = 0; i < listeners_.size(); ++i) listeners_[i]->state()->set_config(next.listeners[i]);
  plugins_->commit(plugins.set, next.server.drain_timeout);
  configure_logger(next.log);
  config_ = std::move(next);
  scheduler_->reconfigure(config_.delivery);
  std::string summary;
  for (const auto& [name, g] : plugins_->current()->plugins)
    summary += name + " " + g->version() + " generation " + std::to_string(g->number()) + "\n";
  log_info("reload.ok");
  reply(true, "reloaded\n" + summary);
}

void Daemon::begin_shutdown() {
  if (stopping_) return;
  stopping_ = true;
  notify_systemd("STOPPING=1");
  for (auto& l : listeners_) l->stop();
  if (metrics_) metrics_->stop();
  if (scheduler_) scheduler_->stop();
  // Outbound connections are ours: they are asked to finish now (a client
  // says QUIT after its current message), not at the deadline, or idle
  // ones kept for reuse would hold the shutdown until then.
  if (connector_) connector_->stop();
  registry_.for_each([](const std::shared_ptr<Connection>& c) {
    if (c->outbound()) c->request_shutdown();
  });
  log_info("server.stopping", {{"connections", std::to_string(registry_.size())},
                               {"deadline_ms", std::to_string(config_.server.shutdown_timeout.count())}});
  shutdown_timer_ = std::make_unique<asio::steady_timer>(main_, config_.server.shutdown_timeout);
  shutdown_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    log_warning("server.shutdown_deadline", {{"connections", std::to_string(registry_.size())}});
    registry_.for_each([](const std::shared_ptr<Connection>& c) { c->request_shutdown(); });
    shutdown_timer_->expires_after(kGoodbyeGrace);
    shutdown_timer_->async_wait([this](const boost::system::error_code& e) {
      if (!e) finish_shutdown();
    });
  });
  registry_.when_empty([this] { asio::post(main_, [this] { finish_shutdown(); }); });
}

void Daemon::finish_shutdown() {
  if (finished_) return;
  finished_ = true;
  if (!shutdown_timer_) shutdown_timer_ = std::make_unique<asio::steady_timer>(main_);
  shutdown_timer_->cancel();
  control_->stop();
  signals_.cancel();
  plugins_->shutdown([this] { main_.stop(); });
  // A plugin that never lets go (a filter sitting on a verdict, a service
  // holding a call) must not keep the daemon from exiting.
  shutdown_timer_->expires_after(kUnloadDeadline);
  shutdown_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    log_warning("server.unload_deadline", {{"plugins", std::to_string(plugins_->status().size())}});
    main_.stop();
  });
}

std::string Daemon::status() const {
  std::ostringstream out;
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_);
  out << "pid=" << ::getpid() << " uptime_s=" << uptime.count() << " connections=" << registry_.size()
      << " state=" << (stopping_ ? "stopping" : "running") << "\n";
  if (scheduler_) out << "delivery in_flight=" << scheduler_->in_flight() << "\n";
  for (const auto& g : plugins_->status()) {
    out << "plugin name=" << g.name << " version=" << g.version << " generation=" << g.generation
        << " state=" << g.state << " sessions=" << g.sessions << "\n";
    for (const auto& [counter, value] : g.counters)
      out << "counter plugin=" << g.name << " generation=" << g.generation << " name=" << counter
          << " value=" << value << "\n";
  }
  for (const auto& l : listeners_) {
    auto c = l->state()->config();
    out << "listener name=" << c->name << " address=" << c->address << " port=" << l->port()
        << " protocol=" << c->protocol << " tls=" << tls_mode_name(c->tls)
        << " connections=" << l->state()->active() << "\n";
  }
  return out.str();
}

MetricsSnapshot Daemon::metrics() const {
  MetricsSnapshot m;
  m.uptime_s = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_).count());
  if (scheduler_) m.delivery_in_flight = scheduler_->in_flight();
  for (const auto& l : listeners_) {
    auto c = l->state()->config();
    m.listeners.push_back({c->name, c->protocol, static_cast<uint64_t>(l->state()->active())});
  }
  for (const auto& g : plugins_->status())
    for (const auto& [name, value] : g.counters) m.counters.push_back({g.name, name, "", value});
  return m;
}

void Daemon::on_control(const std::string& command, const ControlServer::Reply& reply) {
  if (command.starts_with("admin\t")) return admin(command, reply);
  if (command == "status" || command == "reload") log_info("control.command", {{"command", command}});
  if (command == "status") return reply(true, status());
  if (command == "metrics") return reply(true, prometheus_text(metrics()));
  if (command == "reload") return reload(reply);
  // Anything else may carry arguments (even secrets): log its first word.
  std::string word = command.substr(0, std::min(command.find_first_of(" \t"), size_t{32}));
  log_warning("control.unknown", {{"word", word}, {"length", std::to_string(command.size())}});
  reply(false, "unknown command (known: status, reload, metrics, and the admin commands of `postern --help`)");
}

// The "guard" service's say on a new connection (postern/guard.hpp): it
// answers allow, denied or rate; track=1 asks to hear when it closes. A
// guard that fails or does not answer in time lets the peer in (the
// listener's own limits still hold): a broken plugin must not close the
// server.
Admission Daemon::guard_admission(const ListenerConfig& l) {
  return [this, listener = l.name, protocol = l.protocol](const std::string& peer,
                                                          std::function<void(AdmissionVerdict)> done) {
    sdk::Record request;
    request.add("peer", peer).add("listener", listener).add("protocol", protocol);
    call_service(*plugins_, main_, "guard", "admit", request.encode(), std::chrono::seconds(5),
                 [this, peer, listener, done](pst_status status, std::string_view reply) {
                   auto r = sdk::Record::parse(reply);
                   if (status != PST_OK || !r) {
                     log_warning("guard.unavailable", {{"peer", peer}, {"reason", std::string(reply)}});
                     return done(AdmissionVerdict{});
                   }
                   std::string verdict(r->get_or("verdict", "allow"));
                   AdmissionVerdict v;
                   v.allowed = verdict == "allow";
                   v.why = verdict == "rate" ? PST_REFUSE_RATE : PST_REFUSE_DENIED;
                   std::string track(r->get_or("track", "0"));
                   if (v.allowed && !track.empty() && track != "0")
                     v.release = [this, peer, listener, track] {
                       sdk::Record release;
                       release.add("peer", peer).add("listener", listener).add("track", track);
                       call_service(*plugins_, main_, "guard", "release", release.encode(), std::chrono::seconds(5),
                                    [](pst_status, std::string_view) {});
                     };
                   done(std::move(v));
                 });
  };
}

// "admin<TAB>method<TAB>key=value..." goes to the service
// "admin.<group>" when a plugin provides it (method "dmarc.report" ->
// "admin.dmarc": a plugin adds `postern GROUP ...` commands that way),
// else to "admin" (the store's commands). Values may be secrets: only the
// method is logged.
void Daemon::admin(const std::string& line, const ControlServer::Reply& reply) {
  sdk::Record request;
  std::string method;
  size_t start = line.find('\t') + 1;
  while (start <= line.size()) {
    size_t end = line.find('\t', start);
    std::string field = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (method.empty()) method = field;
    else if (size_t eq = field.find('='); eq != std::string::npos) request.add(field.substr(0, eq), field.substr(eq + 1));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  bool method_ok = !method.empty() && method.size() <= 64 &&
                   method.find_first_not_of("abcdefghijklmnopqrstuvwxyz.") == std::string::npos;
  if (!method_ok) {
    log_warning("control.unknown", {{"word", "admin"}, {"length", std::to_string(line.size())}});
    return reply(false, "malformed admin request");
  }
  log_info("control.command", {{"command", "admin " + method}});
  if (stopping_) return reply(false, "the server is shutting down");
  std::string group_service = "admin." + method.substr(0, method.find('.'));
  std::string service = plugins_->find_service(group_service) ? group_service : "admin";
  call_service(*plugins_, main_, service, method, request.encode(), config_.server.call_timeout,
               [reply](pst_status status, std::string_view text) {
                 if (status == PST_ERR_NOT_FOUND && text == "no enabled plugin provides this service")
                   return reply(false, "no store is enabled: add [plugins.store-lmdb] to the configuration");
                 reply(status == PST_OK, std::string(text));
               });
}

}  // namespace postern::core
