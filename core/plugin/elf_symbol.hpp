// Reads the value of a plugin's exported version string straight from its
// ELF file, so that the ABI check happens before dlopen runs any of the
// plugin's code (constructors included). A bounded parser: every offset
// and size from the file is checked against the file's length.
#pragma once

#include <optional>
#include <string>

namespace postern::core {

// The NUL-terminated string (at most max_len bytes) that the dynamic
// symbol `symbol` points at in the ELF64 file at path. nullopt with error
// set when the file is not a readable ELF64 object or lacks the symbol.
std::optional<std::string> read_elf_string_symbol(const std::string& path, const std::string& symbol,
                                                  size_t max_len, std::string& error);

}  // namespace postern::core
