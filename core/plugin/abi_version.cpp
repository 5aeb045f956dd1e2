#include "plugin/abi_version.hpp"

namespace postern::core {
namespace {
std::optional<unsigned> number(std::string_view s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v;
}
}  // namespace

std::optional<AbiVersion> parse_abi_version(std::string_view text) {
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto major = number(text.substr(0, dot));
  auto minor = number(text.substr(dot + 1));
  if (!major || !minor) return std::nullopt;
  return AbiVersion{*major, *minor};
}

std::string abi_incompatibility(AbiVersion plugin, AbiVersion host) {
  auto v = [](AbiVersion a) { return std::to_string(a.major) + "." + std::to_string(a.minor); };
  if (plugin.major != host.major)
    return "built for plugin ABI " + v(plugin) + ", but this posternd speaks ABI " + std::to_string(host.major) +
           ".x: rebuild the plugin against this SDK";
  if (plugin.minor > host.minor)
    return "needs plugin ABI " + v(plugin) + ", but this posternd provides only " + v(host) +
           ": upgrade posternd";
  return {};
}

}  // namespace postern::core
