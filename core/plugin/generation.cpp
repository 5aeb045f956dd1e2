#include "plugin/generation.hpp"

#include "log/logger.hpp"
#include "plugin/abi_version.hpp"
#include "plugin/elf_symbol.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <filesystem>

namespace postern::core {
namespace {

constexpr size_t kMaxVersionSymbol = 16;

std::string copy_image(const std::string& source, const std::string& dir, const std::string& name, uint32_t n,
                       std::string& error) {
  // dlopen returns the already-loaded image for a path it knows, so every
  // generation gets its own file; mkstemps makes the name unique.
  std::string tmpl = dir + "/" + name + ".g" + std::to_string(n) + ".XXXXXX.so";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = mkstemps(buf.data(), 3);
  if (fd < 0) {
    error = "cannot create a plugin image in " + dir + ": " + std::strerror(errno);
    return {};
  }
  ::close(fd);
  std::string path(buf.data());
  std::error_code ec;
  std::filesystem::copy_file(source, path, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    ::unlink(path.c_str());
    error = "cannot copy " + source + ": " + ec.message();
    return {};
  }
  return path;
}

size_t capability_count(const pst_plugin_v1* d) {
  return PST_HAS_FIELD(d, pst_plugin_v1, capability_count) && d->capabilities ? d->capability_count : 0;
}

}  // namespace

bool file_identity(const std::string& path, FileIdentity& out) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return false;
  out = FileIdentity{st.st_dev, st.st_ino, st.st_size,
                     static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  return true;
}

std::unique_ptr<Generation> Generation::load(const LoadRequest& req, LoadFailure& failure) {
  const PluginConfig& pc = *req.plugin;
  auto fail = [&](std::string why) {
    failure.message = req.config_file + ":" + std::to_string(pc.line) + ": plugins." + pc.name + ": " + why +
                      " (" + pc.path + ")";
    return nullptr;
  };
  std::unique_ptr<Generation> g(new Generation());
  g->name_ = pc.name;
  g->number_ = req.number;
  g->source_path_ = pc.path;
  g->fingerprint_ = pc.fingerprint;
  if (!file_identity(pc.path, g->source_)) return fail(std::string("cannot read the file: ") + std::strerror(errno));

  std::string error;
  g->image_path_ = copy_image(pc.path, req.image_dir, pc.name, req.number, error);
  if (g->image_path_.empty()) return fail(error);

  // The version check reads the file, not the loaded image: dlopen would
  // already run the plugin's constructors.
  std::string symbol_error;
  auto version_text = read_elf_string_symbol(g->image_path_, PST_SYMBOL_ABI_VERSION, kMaxVersionSymbol, symbol_error);
  if (!version_text) {
    ::unlink(g->image_path_.c_str());
    return fail("not a Postern plugin: " + symbol_error);
  }
  auto abi = parse_abi_version(*version_text);
  if (!abi) {
    ::unlink(g->image_path_.c_str());
    return fail("unreadable ABI version \"" + *version_text + "\"");
  }
  std::string why = abi_incompatibility(*abi, {PST_ABI_MAJOR, PST_ABI_MINOR});
  if (!why.empty()) {
    ::unlink(g->image_path_.c_str());
    return fail(why);
  }

  try {
    g->library_.load(g->image_path_, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    ::unlink(g->image_path_.c_str());
    return fail(std::string("cannot load: ") + e.what());
  }
  // From here on, the destructor unloads the library and removes the copy.
  if (!g->library_.has(PST_SYMBOL_ENTRY)) return fail("no " PST_SYMBOL_ENTRY " symbol");

  auto& entry = g->library_.get<const pst_plugin_v1*(const pst_host_v1*)>(PST_SYMBOL_ENTRY);
  const pst_plugin_v1* d = entry(host_api());
  if (!d || d->struct_size < offsetof(pst_plugin_v1, capability_count) || d->abi_major != PST_ABI_MAJOR ||
      !d->init || !d->fini)
    return fail("the entry point returned an invalid descriptor");
  g->descriptor_ = d;
  g->name_ = pc.name;
  g->version_ = std::string(d->version.data ? d->version.data : "", d->version.data ? d->version.len : 0);

  g->host_ = std::make_unique<HostContext>(pc.name, req.number, pc.document, pc.table, req.config_file, req.services);
  char message[512];
  pst_error err{sizeof(pst_error), message, sizeof message, 0};
  g->instance_ = d->init(host_api(), g->host_.get(), &err);
  if (!g->instance_) {
    failure.config_errors = g->host_->config_errors();
    std::string reason(message, err.len);
    return fail("init failed: " + (reason.empty() ? std::string("no reason given") : reason));
  }
  return g;
}

Generation::~Generation() {
  if (instance_) descriptor_->fini(instance_);
  instance_ = nullptr;
  unload();
}

bool Generation::start(std::string& error) {
  started_ = true;
  if (!descriptor_->start) return true;
  char message[512];
  pst_error err{sizeof(pst_error), message, sizeof message, 0};
  if (descriptor_->start(instance_, &err) == PST_OK) return true;
  error = "plugin \"" + name_ + "\": start failed: " + std::string(message, err.len);
  return false;
}

namespace {
// The name of a protocol or service table, if it is one of `kind` and big
// enough to hold what this host reads.
std::optional<std::string_view> capability_name(const pst_capability_v1& c, uint32_t kind) {
  if (c.kind != kind || !c.table) return std::nullopt;
  if (kind == PST_CAP_PROTOCOL) {
    auto* p = static_cast<const pst_protocol_v1*>(c.table);
    if (p->struct_size < offsetof(pst_protocol_v1, refuse)) return std::nullopt;
    return std::string_view(p->name.data, p->name.len);
  }
  if (kind == PST_CAP_FILTER) {
    auto* f = static_cast<const pst_filter_v1*>(c.table);
    if (f->struct_size < sizeof(pst_filter_v1) || !f->on_stage) return std::nullopt;
    return std::string_view(f->name.data, f->name.len);
  }
  auto* s = static_cast<const pst_service_v1*>(c.table);
  if (s->struct_size < sizeof(pst_service_v1) || !s->handle) return std::nullopt;
  return std::string_view(s->name.data, s->name.len);
}
}  // namespace

template <class Table>
static const Table* find_capability(const pst_plugin_v1* d, uint32_t kind, std::string_view name) {
  for (size_t i = 0, n = capability_count(d); i < n; ++i)
    if (capability_name(d->capabilities[i], kind) == name) return static_cast<const Table*>(d->capabilities[i].table);
  return nullptr;
}

static std::vector<std::string> capability_names(const pst_plugin_v1* d, uint32_t kind) {
  std::vector<std::string> names;
  for (size_t i = 0, n = capability_count(d); i < n; ++i)
    if (auto name = capability_name(d->capabilities[i], kind)) names.emplace_back(*name);
  return names;
}

const pst_protocol_v1* Generation::protocol(std::string_view name) const {
  return find_capability<pst_protocol_v1>(descriptor_, PST_CAP_PROTOCOL, name);
}
std::vector<std::string> Generation::protocol_names() const { return capability_names(descriptor_, PST_CAP_PROTOCOL); }
const pst_service_v1* Generation::service(std::string_view name) const {
  return find_capability<pst_service_v1>(descriptor_, PST_CAP_SERVICE, name);
}
std::vector<std::string> Generation::service_names() const { return capability_names(descriptor_, PST_CAP_SERVICE); }
const pst_filter_v1* Generation::filter(std::string_view name) const {
  return find_capability<pst_filter_v1>(descriptor_, PST_CAP_FILTER, name);
}
std::vector<std::string> Generation::filter_names() const { return capability_names(descriptor_, PST_CAP_FILTER); }

void Generation::retire(std::function<void(bool)> done) {
  if (started_ && descriptor_->stop) descriptor_->stop(instance_);
  started_ = false;
  host_->retire([this, done = std::move(done)] { done(discard()); });
}

bool Generation::discard() {
  if (instance_ && started_ && descriptor_->stop) descriptor_->stop(instance_);
  started_ = false;
  if (instance_) descriptor_->fini(instance_);
  instance_ = nullptr;
  return unload();
}

bool Generation::unload() {
  if (!library_.is_loaded()) return true;
  library_.unload();
  // Check that the image really went: an STB_GNU_UNIQUE symbol (or a
  // thread_local with a destructor) silently pins a library in memory.
  bool gone = true;
  if (void* h = ::dlopen(image_path_.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    gone = false;
    ::dlclose(h);
  }
  ::unlink(image_path_.c_str());
  return gone;
}

}  // namespace postern::core
