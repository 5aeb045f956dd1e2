// Replays a fuzz corpus without libFuzzer: calls LLVMFuzzerTestOneInput on
// every regular file under the directories (or files) given as arguments,
// so CTest can run the corpus with g++ and the sanitizers. Exits non-zero
// when nothing was replayed, which means the corpus path is wrong.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

struct Replay {
  size_t count = 0;
  bool failed = false;

  void file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", path.c_str());
      failed = true;
      return;
    }
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++count;
  }
};

}  // namespace

int main(int argc, char** argv) {
  Replay replay;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (!std::filesystem::is_directory(arg, ec)) {
      replay.file(arg);
      continue;
    }
    for (const auto& entry : std::filesystem::recursive_directory_iterator(arg, ec)) {
      std::error_code type_ec;
      if (!entry.is_regular_file(type_ec)) continue;
      replay.file(entry.path());
    }
    if (ec) {
      std::fprintf(stderr, "cannot list %s: %s\n", argv[i], ec.message().c_str());
      replay.failed = true;
    }
  }
  std::printf("replayed %zu inputs\n", replay.count);
  return replay.failed || replay.count == 0 ? 1 : 0;
}
