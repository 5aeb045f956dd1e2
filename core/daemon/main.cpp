// posternd: the Postern mail server daemon.
#include "config/config.hpp"
#include "daemon/check.hpp"
#include "daemon/daemon.hpp"
#include "log/logger.hpp"

#include <malloc.h>
#include <openssl/ssl.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: posternd [--config FILE]        run in the foreground\n"
               "       posternd --check [--config FILE] validate the configuration and exit\n"
               "       posternd --version\n"
               "FILE defaults to %s\n",
               POSTERN_DEFAULT_CONFIG);
}

}  // namespace

int main(int argc, char** argv) {
  // glibc raises its mmap threshold to the size of each large block freed,
  // so after the first Argon2id check (19 MiB) every worker thread kept
  // such blocks in its heap for good (40 MB for two workers, measured).
  // A fixed threshold sends large blocks (Argon2 memory, big messages)
  // back to the system when they are freed.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  std::string config_path = POSTERN_DEFAULT_CONFIG;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--check") check = true;
    else if (arg == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (arg == "--version") {
      std::printf("posternd %s (plugin ABI %s)\n", POSTERN_VERSION, PST_ABI_VERSION_STRING);
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  // A peer that vanishes mid-write must be an error code, not a signal.
  std::signal(SIGPIPE, SIG_IGN);

  if (check) {
    auto errors = postern::core::check_configuration(config_path);
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    if (!errors.empty()) return 1;
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  auto loaded = postern::core::load_config(config_path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors)
      postern::core::log_error("config.invalid", {{"error", e.to_string()}});
    return 1;
  }
  postern::core::Daemon daemon(std::move(*loaded.config));
  return daemon.run();
}
