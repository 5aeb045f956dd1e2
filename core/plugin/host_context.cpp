#include "plugin/host_context.hpp"

#include "runtime/notify_hub.hpp"

#include <toml++/toml.h>

namespace postern::core {
namespace {
constexpr std::string_view kHostKeys[] = {"path", "enabled"};

std::vector<std::string> table_keys(const toml::node* node, bool hide_host_keys) {
  std::vector<std::string> keys;
  if (!node || !node->is_table()) return keys;
  for (auto&& [k, v] : *node->as_table()) {
    bool hidden = false;
    for (std::string_view h : kHostKeys) hidden = hidden || (hide_host_keys && k.str() == h);
    if (!hidden) keys.emplace_back(k.str());
  }
  return keys;
}
}  // namespace

HostContext::HostContext(std::string plugin, uint32_t generation, std::shared_ptr<const toml::table> document,
                         const toml::table* config, std::string config_file, const HostServices& services)
    : plugin_(std::move(plugin)), generation_(generation), config_file_(std::move(config_file)),
      services_(services), document_(std::move(document)) {
  ConfigNode& root = nodes_.emplace_back();
  root.node = config;
  root.path = "plugins." + plugin_;
  root.keys = table_keys(config, true);
  root_ = &root;
}

HostContext::~HostContext() = default;

const ConfigNode* HostContext::child(const ConfigNode* parent, const toml::node* node, std::string path) {
  if (!node) return nullptr;
  (void)parent;
  std::lock_guard lock(config_mutex_);
  ConfigNode& n = nodes_.emplace_back();
  n.node = node;
  n.path = std::move(path);
  n.keys = table_keys(node, false);
  return &n;
}

void HostContext::config_error(const ConfigNode* node, std::string message) {
  std::lock_guard lock(config_mutex_);
  ConfigError e{config_file_, 0, 0, node ? node->path : root_->path, std::move(message)};
  const toml::node* at = node && node->node ? node->node : root_->node;
  if (at) {
    e.line = static_cast<uint32_t>(at->source().begin.line);
    e.column = static_cast<uint32_t>(at->source().begin.column);
  }
  config_errors_.push_back(std::move(e));
}

bool HostContext::add_timer(const std::shared_ptr<TimerOp>& op) {
  std::lock_guard lock(mutex_);
  if (retiring_) return false;
  timers_.emplace(op->id, op);
  return true;
}

std::shared_ptr<TimerOp> HostContext::find_timer(uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = timers_.find(id);
  return it == timers_.end() || it->second->done ? nullptr : it->second;
}

void HostContext::finish_timer(const std::shared_ptr<TimerOp>& op, pst_status status) {
  {
    std::lock_guard lock(mutex_);
    auto it = timers_.find(op->id);
    if (it == timers_.end() || op->done) return;
    op->done = true;
  }
  // Still counted while the plugin's callback runs: retire waits for it.
  op->fn(op->user, status);
  std::function<void()> idle;
  {
    std::lock_guard lock(mutex_);
    timers_.erase(op->id);
    idle = take_idle_locked();
  }
  post_idle(std::move(idle));
}

bool HostContext::begin_job() {
  std::lock_guard lock(mutex_);
  if (retiring_) return false;
  ++jobs_;
  return true;
}

void HostContext::end_job() {
  std::function<void()> idle;
  {
    std::lock_guard lock(mutex_);
    --jobs_;
    idle = take_idle_locked();
  }
  post_idle(std::move(idle));
}

void HostContext::retire(std::function<void()> idle) {
  std::vector<std::shared_ptr<TimerOp>> pending;
  {
    std::lock_guard lock(mutex_);
    retiring_ = true;  // first: a racing subscribe sees it and backs out
    idle_ = std::move(idle);
    for (auto& [id, op] : timers_) pending.push_back(op);
  }
  if (services_.notify) services_.notify->unsubscribe_owner(this);
  // A steady_timer may only be touched on its own executor.
  for (auto& op : pending) {
    op->cancelled = true;
    boost::asio::post(op->timer.get_executor(), [op] { op->timer.cancel(); });
  }
  std::function<void()> now;
  {
    std::lock_guard lock(mutex_);
    now = take_idle_locked();
  }
  post_idle(std::move(now));
}

std::function<void()> HostContext::take_idle_locked() {
  if (!retiring_ || !idle_ || !timers_.empty() || jobs_ != 0) return nullptr;
  return std::exchange(idle_, nullptr);
}

// Holding the idle callback means nobody else can retire this context, so
// it is still alive here; after the post it may be gone.
void HostContext::post_idle(std::function<void()> idle) {
  if (idle) boost::asio::post(*services_.main, std::move(idle));
}

uint32_t HostContext::add_counter(std::string name, std::string help) {
  std::lock_guard lock(mutex_);
  uint32_t n = counter_count_.load();
  for (uint32_t i = 0; i < n; ++i)
    if (counters_[i].name == name) return i;
  if (n == kMaxCounters) return UINT32_MAX;
  counters_[n].name = std::move(name);
  counters_[n].help = std::move(help);
  counter_count_.store(n + 1);
  return n;
}

void HostContext::counter_add(uint32_t id, uint64_t delta) {
  if (id < counter_count_.load()) counters_[id].value.fetch_add(delta, std::memory_order_relaxed);
}

std::vector<std::pair<std::string, uint64_t>> HostContext::counters() const {
  std::vector<std::pair<std::string, uint64_t>> out;
  uint32_t n = counter_count_.load();
  for (uint32_t i = 0; i < n; ++i) out.emplace_back(counters_[i].name, counters_[i].value.load());
  return out;
}

}  // namespace postern::core
