// postern: the administration command. Talks to posternd over the control
// socket named in the same config file the daemon reads.
#include "config/config.hpp"

#include <fcntl.h>
#include <csignal>
#include <cstdint>
#include <openssl/rand.h>
#include <qrencode.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr size_t kMaxReply = 1 << 20;

void usage() {
  std::fprintf(stderr,
               "usage: postern [--config FILE] COMMAND\n"
               "commands:\n"
               "  status                        uptime, plugins and generations, listeners, connections\n"
               "  reload                        re-read the configuration; reload changed plugins and certificates\n"
               "  metrics                       counters and gauges in the Prometheus text format\n"
               "  quarantine list               messages held (virus, spam), with the reason and expiry\n"
               "  quarantine show|release|delete ID   headers | queue it for its recipients | drop it\n"
               "  spam lift ADDRESS             let an account suspended for outbound spam send again\n"
               "  domain add|remove DOMAIN      serve (or stop serving) mail for DOMAIN\n"
               "  domain list\n"
               "  user add ADDRESS              create a user; the password is read from the terminal or stdin\n"
               "  user passwd ADDRESS           set a new password (read the same way)\n"
               "  user remove ADDRESS           delete the user, its mail and the aliases pointing at it\n"
               "  user list [DOMAIN]\n"
               "  alias add SOURCE TARGET       SOURCE is an address, or @DOMAIN for a catch-all\n"
               "  alias remove SOURCE\n"
               "  alias list\n"
               "  quota set ADDRESS SIZE        SIZE in bytes, or with K, M or G; 0 = no limit\n"
               "  quota show ADDRESS            storage used and its limit\n"
               "  quota usage ADDRESS           sending (messages, recipients per hour and day) and storage\n"
               "  keys new FILE                 write a new random master key to FILE (mode 0600; no daemon needed)\n"
               "  keys rotate                   rewrap every key under a new master key\n"
               "  store verify                  check every record, reference and quota counter\n"
               "  2fa enable USER               start two-factor authentication: QR code, secret, recovery codes\n"
               "  2fa confirm USER CODE         turn it on once the phone shows codes\n"
               "  2fa disable USER | status USER\n"
               "  app-password add USER --name NAME [--protocols imap,smtp] [--from CIDR] [--expires 90d]\n"
               "                                a password for one mail program (printed once)\n"
               "  app-password list USER | remove USER NAME\n"
               "  dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519]\n"
               "                                a new signing key; prints the TXT record to publish\n"
               "  dkim list [DOMAIN] | remove DOMAIN SELECTOR\n"
               "  dns records DOMAIN [--mx HOST] the MX, SPF, DKIM and DMARC records to publish\n"
               "  dmarc report --domain D --since DAY --until DAY\n"
               "                                the RFC 7489 aggregate report (XML) for mail from D; DAY is\n"
               "                                YYYY-MM-DD (UTC midnight) or unix seconds; until is exclusive\n"
               "  relay password HOST USER      store (sealed) the smart host's AUTH credentials; the password\n"
               "                                is read from the terminal or stdin\n"
               "  relay list | remove HOST\n"
               "  tlsrpt report [--date DAY] [--domain D]\n"
               "                                the RFC 8460 TLS report (JSON) of outbound sessions per\n"
               "                                policy domain; DAY is YYYY-MM-DD (UTC), today by default\n"
               "  tlsrpt send [--date DAY]      mail that day's reports to each domain's rua address now\n"
               "                                (yesterday's go by themselves once a day)\n"
               "  ban list                      addresses and networks the guard refuses, and until when\n"
               "  ban add NETWORK [--for 1d] [--reason TEXT] | ban remove NETWORK\n"
               "  queue list                    queued messages, their recipients and states\n"
               "  queue show ID                 one queued message: envelope, states and headers\n"
               "  queue retry [ID]              make one (or every) queued message due now\n"
               "  queue delete ID               drop a queued message (no bounce is sent)\n"
               "FILE defaults to %s\n",
               POSTERN_DEFAULT_CONFIG);
}

// Reads a password without echo from a terminal (twice, to confirm), or one
// line from stdin otherwise. Never from the command line: argv is public.
std::optional<std::string> read_password() {
  auto line = [](std::string& out) { return static_cast<bool>(std::getline(std::cin, out)); };
  if (!isatty(STDIN_FILENO)) {
    std::string p;
    if (!line(p)) return std::nullopt;
    if (!p.empty() && p.back() == '\r') p.pop_back();
    return p;
  }
  termios old{};
  if (tcgetattr(STDIN_FILENO, &old) != 0) return std::nullopt;
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  // Signals wait until echo is back on: ^C at the prompt must not leave
  // the terminal silent.
  sigset_t block, previous;
  sigemptyset(&block);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGTSTP, SIGQUIT}) sigaddset(&block, sig);
  sigprocmask(SIG_BLOCK, &block, &previous);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  std::string first, second;
  std::fprintf(stderr, "Password: ");
  bool ok = line(first);
  std::fprintf(stderr, "\nAgain: ");
  ok = ok && line(second);
  std::fprintf(stderr, "\n");
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (!ok) return std::nullopt;
  if (first != second) {
    std::fprintf(stderr, "postern: the passwords differ\n");
    return std::nullopt;
  }
  return first;
}

// Bytes, or a number with K, M or G; nullopt on anything else or overflow.
std::optional<std::string> parse_size(const std::string& s) {
  uint64_t n = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    unsigned d = static_cast<unsigned>(s[i] - '0');
    if (n > (UINT64_MAX - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  if (i == 0 || i + 1 < s.size()) return std::nullopt;
  if (i < s.size()) {
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
    int shift = u == 'K' ? 10 : u == 'M' ? 20 : u == 'G' ? 30 : -1;
    if (shift < 0 || n > (UINT64_MAX >> shift)) return std::nullopt;
    n <<= shift;
  }
  return std::to_string(n);
}

// Turns `postern WORDS...` into a control request line, or an error.
// "90d", "12h", "30m", "20s" -> seconds, as text.
std::optional<std::string> parse_lifetime(const std::string& text) {
  if (text.size() < 2 || text.size() > 8) return std::nullopt;
  char unit = text.back();
  uint64_t scale = unit == 'd' ? 86400 : unit == 'h' ? 3600 : unit == 'm' ? 60 : unit == 's' ? 1 : 0;
  std::string digits = text.substr(0, text.size() - 1);
  if (!scale || digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::to_string(std::stoull(digits) * scale);
}

// A QR code drawn with Unicode half blocks: two module rows per line,
// light modules as blocks (the usual dark terminal), a quiet zone of 2.
std::string render_qr(const std::string& text) {
  QRcode* qr = QRcode_encodeString(text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1);
  if (!qr) return "(the QR code could not be drawn; type the secret instead)\n";
  int w = qr->width, margin = 2, size = w + 2 * margin;
  auto dark = [&](int x, int y) {
    x -= margin;
    y -= margin;
    return x >= 0 && y >= 0 && x < w && y < w && (qr->data[y * w + x] & 1);
  };
  std::string out;
  for (int y = 0; y < size; y += 2) {
    for (int x = 0; x < size; ++x) {
      bool top = !dark(x, y), bottom = y + 1 < size && !dark(x, y + 1);
      out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
    }
    out += "\n";
  }
  QRcode_free(qr);
  return out;
}

struct Request {
  std::string line;
  std::string error;
};

// mail_host: the MX target `dns records` prints unless --mx names one.
Request admin_request(const std::vector<std::string>& w, const std::string& mail_host) {
  auto field = [](const std::string& k, const std::string& v) -> std::optional<std::string> {
    if (v.find_first_of("\t\r\n") != std::string::npos) return std::nullopt;
    return "\t" + k + "=" + v;
  };
  auto build = [&](const std::string& method, std::vector<std::pair<std::string, std::string>> kv) -> Request {
    std::string line = "admin\t" + method;
    for (auto& [k, v] : kv) {
      auto f = field(k, v);
      if (!f) return {"", "arguments must not contain tabs or line breaks"};
      line += *f;
    }
    return {line, ""};
  };
  size_t n = w.size();
  std::string group = n > 0 ? w[0] : "", verb = n > 1 ? w[1] : "";
  if (group == "domain" && (verb == "add" || verb == "remove") && n == 3) return build("domain." + verb, {{"domain", w[2]}});
  if (group == "domain" && verb == "list" && n == 2) return build("domain.list", {});
  if (group == "user" && (verb == "add" || verb == "passwd") && n == 3) {
    auto password = read_password();
    if (!password) return {"", "no password given"};
    if (password->size() > 1024) return {"", "the password is longer than 1024 bytes"};
    return build(verb == "add" ? "account.add" : "account.passwd", {{"address", w[2]}, {"password", *password}});
  }
  if (group == "user" && verb == "remove" && n == 3) return build("account.remove", {{"address", w[2]}});
  if (group == "relay" && verb == "password" && n == 4) {
    auto password = read_password();
    if (!password) return {"", "no password given"};
    if (password->size() > 1024) return {"", "the password is longer than 1024 bytes"};
    return build("relay.set", {{"host", w[2]}, {"username", w[3]}, {"password", *password}});
  }
  if (group == "relay" && verb == "list" && n == 2) return build("relay.list", {});
  if (group == "relay" && verb == "remove" && n == 3) return build("relay.remove", {{"host", w[2]}});
  if (group == "user" && verb == "list" && n <= 3) {
    std::vector<std::pair<std::string, std::string>> kv;
    if (n == 3) kv.emplace_back("domain", w[2]);
    return build("account.list", kv);
  }
  if (group == "alias" && verb == "add" && n == 4) return build("alias.add", {{"source", w[2]}, {"target", w[3]}});
  if (group == "alias" && verb == "remove" && n == 3) return build("alias.remove", {{"source", w[2]}});
  if (group == "alias" && verb == "list" && n == 2) return build("alias.list", {});
  if (group == "quota" && verb == "set" && n == 4) {
    auto size = parse_size(w[3]);
    if (!size) return {"", "SIZE must be a number of bytes, optionally with K, M or G"};
    return build("quota.set", {{"address", w[2]}, {"bytes", *size}});
  }
  if (group == "quota" && verb == "show" && n == 3) return build("quota.get", {{"address", w[2]}});
  if (group == "quota" && verb == "usage" && n == 3) return build("limits.usage", {{"address", w[2]}});
  if (group == "quarantine" && verb == "list" && n == 2) return build("quarantine.list", {});
  if (group == "spam" && verb == "lift" && n == 3) return build("spam.lift", {{"address", w[2]}});
  if (group == "quarantine" && (verb == "show" || verb == "release" || verb == "delete") && n == 3)
    return build("quarantine." + verb, {{"id", w[2]}});
  if (group == "keys" && verb == "rotate" && n == 2) return build("keys.rotate", {});
  if (group == "queue" && verb == "list" && n == 2) return build("queue.list", {});
  if (group == "queue" && (verb == "show" || verb == "delete") && n == 3) return build("queue." + verb, {{"id", w[2]}});
  if (group == "queue" && verb == "retry" && (n == 2 || n == 3))
    return n == 3 ? build("queue.retry", {{"id", w[2]}}) : build("queue.retry", {});
  if (group == "store" && verb == "verify" && n == 2) return build("store.verify", {});
  if (group == "2fa" && (verb == "enable" || verb == "disable" || verb == "status") && n == 3)
    return build("tfa." + verb, {{"address", w[2]}});
  if (group == "2fa" && verb == "confirm" && n == 4) return build("tfa.confirm", {{"address", w[2]}, {"code", w[3]}});
  if (group == "dkim" && verb == "keygen" && n >= 3) {
    std::vector<std::pair<std::string, std::string>> kv{{"domain", w[2]}};
    if ((n - 3) % 2 != 0) return {"", "each option takes a value"};
    for (size_t i = 3; i + 1 < n; i += 2) {
      if (w[i] == "--selector") kv.emplace_back("selector", w[i + 1]);
      else if (w[i] == "--algorithm") kv.emplace_back("algorithm", w[i + 1]);
      else return {"", "unknown option " + w[i]};
    }
    return build("dkim.keygen", kv);
  }
  if (group == "dkim" && verb == "list" && (n == 2 || n == 3))
    return n == 3 ? build("dkim.list", {{"domain", w[2]}}) : build("dkim.list", {});
  if (group == "dkim" && verb == "remove" && n == 4)
    return build("dkim.remove", {{"domain", w[2]}, {"selector", w[3]}});
  if (group == "dns" && verb == "records" && (n == 3 || n == 5)) {
    if (n == 5 && w[3] != "--mx") return {"", "unknown option " + w[3]};
    return build("dns.records", {{"domain", w[2]}, {"mx", n == 5 ? w[4] : mail_host}});
  }
  if (group == "dmarc" && verb == "report" && n >= 3) {
    std::vector<std::pair<std::string, std::string>> kv;
    if ((n - 2) % 2 != 0) return {"", "each option takes a value"};
    for (size_t i = 2; i + 1 < n; i += 2) {
      if (w[i] == "--domain" || w[i] == "--since" || w[i] == "--until") kv.emplace_back(w[i].substr(2), w[i + 1]);
      else return {"", "unknown option " + w[i]};
    }
    return build("dmarc.report", kv);
  }
  if (group == "tlsrpt" && verb == "report") {
    std::vector<std::pair<std::string, std::string>> kv;
    if ((n - 2) % 2 != 0) return {"", "each option takes a value"};
    for (size_t i = 2; i + 1 < n; i += 2) {
      if (w[i] == "--domain" || w[i] == "--date") kv.emplace_back(w[i].substr(2), w[i + 1]);
      else return {"", "unknown option " + w[i]};
    }
    return build("tlsrpt.report", kv);
  }
  if (group == "tlsrpt" && verb == "send" && (n == 2 || n == 4)) {
    if (n == 4 && w[2] != "--date") return {"", "unknown option " + w[2]};
    return build("tlsrpt.send", n == 4 ? std::vector<std::pair<std::string, std::string>>{{"date", w[3]}}
                                       : std::vector<std::pair<std::string, std::string>>{});
  }
  if (group == "ban" && verb == "list" && n == 2) return build("ban.list", {});
  if (group == "ban" && verb == "remove" && n == 3) return build("ban.remove", {{"network", w[2]}});
  if (group == "ban" && verb == "add" && n >= 3) {
    std::vector<std::pair<std::string, std::string>> kv{{"network", w[2]}};
    if ((n - 3) % 2 != 0) return {"", "each option takes a value"};
    for (size_t i = 3; i + 1 < n; i += 2) {
      if (w[i] == "--for") {
        auto seconds = parse_lifetime(w[i + 1]);
        if (!seconds || *seconds == "0") return {"", "--for takes days (7d), hours (12h) or minutes (30m)"};
        kv.emplace_back("seconds", *seconds);
      } else if (w[i] == "--reason") {
        kv.emplace_back("reason", w[i + 1]);
      } else {
        return {"", "unknown option " + w[i]};
      }
    }
    return build("ban.add", kv);
  }
  if (group == "app-password" && verb == "list" && n == 3) return build("app.list", {{"address", w[2]}});
  if (group == "app-password" && verb == "remove" && n == 4)
    return build("app.remove", {{"address", w[2]}, {"name", w[3]}});
  if (group == "app-password" && verb == "add" && n >= 5) {
    std::vector<std::pair<std::string, std::string>> kv{{"address", w[2]}};
    for (size_t i = 3; i + 1 < n; i += 2) {
      const std::string& option = w[i];
      if (option == "--name") kv.emplace_back("name", w[i + 1]);
      else if (option == "--protocols") kv.emplace_back("protocols", w[i + 1]);
      else if (option == "--from") kv.emplace_back("from", w[i + 1]);
      else if (option == "--expires") {
        auto seconds = parse_lifetime(w[i + 1]);
        if (!seconds || *seconds == "0") return {"", "--expires takes a number of days (90d), hours (12h) or minutes (30m)"};
        kv.emplace_back("expires_in", *seconds);
      } else {
        return {"", "unknown option " + option};
      }
    }
    if ((n - 3) % 2 != 0) return {"", "each option takes a value"};
    return build("app.add", kv);
  }
  return {"", "usage"};
}

// Sends one request line; returns 0 (ok), 1 (the daemon said error) or 3.
int request(const std::string& socket_path, const std::string& command) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || socket_path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "postern: bad control socket path %s\n", socket_path.c_str());
    return 3;
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "postern: cannot reach posternd at %s: %s\n", socket_path.c_str(), std::strerror(errno));
    ::close(fd);
    return 3;
  }
  std::string line = command + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    std::fprintf(stderr, "postern: cannot send to posternd: %s\n", std::strerror(errno));
    ::close(fd);
    return 3;
  }
  std::string reply;
  char buf[4096];
  ssize_t n;
  while (reply.size() < kMaxReply && (n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t nl = reply.find('\n');
  std::string verdict = reply.substr(0, nl);
  std::string body = nl == std::string::npos ? "" : reply.substr(nl + 1);
  if (verdict == "ok") {
    std::fputs(body.c_str(), stdout);
    // `2fa enable`: the otpauth URI as a QR code, for the phone's camera.
    if (size_t at = body.find("\nuri: otpauth://"); at != std::string::npos) {
      std::string uri = body.substr(at + 6, body.find('\n', at + 1) - at - 6);
      std::fputs(render_qr(uri).c_str(), stdout);
    }
    return 0;
  }
  if (verdict == "error") {
    std::string what = command.substr(0, command.find('\t', command.find('\t') + 1));  // never echo arguments
    for (char& c : what)
      if (c == '\t') c = ' ';
    std::fprintf(stderr, "postern: %s failed: %s", what.c_str(), body.c_str());
    return 1;
  }
  std::fprintf(stderr, "postern: no answer from posternd (did it stop?)\n");
  return 3;
}

// `postern keys new FILE`: a fresh 256-bit master key, 64 hex digits, in a
// file only its owner can read. Refuses to overwrite.
int new_key_file(const std::string& path) {
  unsigned char key[32];
  if (RAND_bytes(key, sizeof key) != 1) {
    std::fprintf(stderr, "postern: no randomness available\n");
    return 1;
  }
  char text[66];
  for (int i = 0; i < 32; ++i) std::snprintf(text + 2 * i, 3, "%02x", key[i]);
  text[64] = '\n';
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "postern: cannot create %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  bool ok = ::write(fd, text, 65) == 65 && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    std::fprintf(stderr, "postern: cannot write %s\n", path.c_str());
    return 1;
  }
  std::printf("wrote a new master key to %s (keep a copy somewhere safe: without it the store cannot be read)\n",
              path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = POSTERN_DEFAULT_CONFIG;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) config = argv[++i];
    else words.push_back(arg);
  }
  std::string command;
  if (words.size() == 3 && words[0] == "keys" && words[1] == "new") return new_key_file(words[2]);
  if (words.size() == 1 && (words[0] == "status" || words[0] == "reload" || words[0] == "metrics")) {
    command = words[0];
  } else if (!words.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    // The SMTP server's name is the MX target, as the daemon would say it.
    Request r = admin_request(words, postern::core::plugin_string_of(config, "smtp", "hostname").value_or(host));
    if (r.error == "usage") {
      usage();
      return 2;
    }
    if (!r.error.empty()) {
      std::fprintf(stderr, "postern: %s\n", r.error.c_str());
      return 2;
    }
    command = r.line;
  } else {
    usage();
    return 2;
  }
  std::string error;
  std::string socket_path = postern::core::control_socket_of(config, error);
  if (socket_path.empty()) {
    std::fprintf(stderr, "postern: %s\n", error.c_str());
    return 3;
  }
  return request(socket_path, command);
}
