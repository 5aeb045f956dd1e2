#include "plugin/elf_symbol.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <vector>

namespace postern::core {
namespace {

constexpr size_t kMaxPluginFile = 512u << 20;

// A view of the file that refuses every out-of-range read.
class Bytes {
 public:
  explicit Bytes(std::vector<char> data) : data_(std::move(data)) {}
  template <class T>
  bool read(uint64_t offset, T& out) const {
    if (offset > data_.size() || sizeof(T) > data_.size() - offset) return false;
    std::memcpy(&out, data_.data() + offset, sizeof(T));
    return true;
  }
  bool has(uint64_t offset, uint64_t len) const { return offset <= data_.size() && len <= data_.size() - offset; }
  const char* at(uint64_t offset) const { return data_.data() + offset; }
  size_t size() const { return data_.size(); }

 private:
  std::vector<char> data_;
};

bool section(const Bytes& f, const Elf64_Ehdr& eh, unsigned index, Elf64_Shdr& out) {
  if (index >= eh.e_shnum) return false;
  return f.read(eh.e_shoff + uint64_t(index) * eh.e_shentsize, out);
}

}  // namespace

std::optional<std::string> read_elf_string_symbol(const std::string& path, const std::string& symbol,
                                                  size_t max_len, std::string& error) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    error = "cannot open " + path;
    return std::nullopt;
  }
  auto size = static_cast<uint64_t>(in.tellg());
  if (size > kMaxPluginFile) {
    error = "file too large for a plugin";
    return std::nullopt;
  }
  std::vector<char> data(size);
  in.seekg(0);
  in.read(data.data(), static_cast<std::streamsize>(size));
  Bytes f(std::move(data));

  Elf64_Ehdr eh{};
  if (!f.read(0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_shentsize != sizeof(Elf64_Shdr)) {
    error = "not an ELF64 shared object";
    return std::nullopt;
  }
  for (unsigned i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh{};
    if (!section(f, eh, i, sh)) break;
    if (sh.sh_type != SHT_DYNSYM || sh.sh_entsize != sizeof(Elf64_Sym)) continue;
    Elf64_Shdr strtab{};
    if (!section(f, eh, sh.sh_link, strtab) || !f.has(strtab.sh_offset, strtab.sh_size) ||
        !f.has(sh.sh_offset, sh.sh_size))
      break;
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= sh.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym{};
      if (!f.read(sh.sh_offset + off, sym) || sym.st_name >= strtab.sh_size) continue;
      const char* name = f.at(strtab.sh_offset + sym.st_name);
      size_t room = strtab.sh_size - sym.st_name;
      if (strnlen(name, room) != symbol.size() || std::memcmp(name, symbol.data(), symbol.size()) != 0) continue;
      Elf64_Shdr holder{};
      if (sym.st_shndx == SHN_UNDEF || !section(f, eh, sym.st_shndx, holder) || holder.sh_type == SHT_NOBITS ||
          sym.st_value < holder.sh_addr || sym.st_value - holder.sh_addr >= holder.sh_size) {
        error = "symbol " + symbol + " has no data in the file";
        return std::nullopt;
      }
      uint64_t at = holder.sh_offset + (sym.st_value - holder.sh_addr);
      uint64_t avail = holder.sh_size - (sym.st_value - holder.sh_addr);
      if (!f.has(at, avail)) break;
      size_t len = strnlen(f.at(at), std::min<uint64_t>(avail, max_len + 1));
      if (len > max_len) {
        error = "symbol " + symbol + " is not a short string";
        return std::nullopt;
      }
      return std::string(f.at(at), len);
    }
  }
  error = "no " + symbol + " symbol";
  return std::nullopt;
}

}  // namespace postern::core
