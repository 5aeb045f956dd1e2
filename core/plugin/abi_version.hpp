// Compatibility of a plugin's ABI version with this host's, decided from
// the plugin's exported version string before any plugin code runs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postern::core {

struct AbiVersion {
  unsigned major = 0;
  unsigned minor = 0;
};

// "MAJOR.MINOR" (digits only, each at most 4 digits); nullopt otherwise.
std::optional<AbiVersion> parse_abi_version(std::string_view text);

// Empty when a plugin needing `plugin` loads into a host providing `host`:
// same major, plugin minor not above the host's. Otherwise the reason.
std::string abi_incompatibility(AbiVersion plugin, AbiVersion host);

}  // namespace postern::core
