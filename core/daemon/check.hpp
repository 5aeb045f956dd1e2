// `posternd --check`: validates the core config and every enabled plugin's
// own table (by loading the plugin and running its init) without binding
// ports or starting anything.
#pragma once

#include <string>
#include <vector>

namespace postern::core {

// Returns the errors, one per line ("FILE:LINE:COL: KEY: MESSAGE" where the
// position is known); empty when the configuration is valid.
std::vector<std::string> check_configuration(const std::string& path);

}  // namespace postern::core
