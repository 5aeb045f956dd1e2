// SMTP command parsing (RFC 5321 §4.1, with the parameters of SIZE,
// 8BITMIME, SMTPUTF8, DSN and AUTH). Bounded and strict: anything that
// does not parse is a syntax error for the caller to answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp {

struct Command {
  std::string verb;  // upper case
  std::string args;  // the rest, leading spaces removed
};

Command split_command(std::string_view line);

struct Address {
  std::string local, domain;  // domain lower-cased; empty for the null path
  bool null() const { return local.empty() && domain.empty(); }
  // RCPT TO:<Postmaster> without a domain, which every server must accept.
  bool bare_postmaster() const { return domain.empty() && local == "postmaster"; }
  std::string str() const { return null() ? "" : local + "@" + domain; }
};

struct Parameters {
  std::optional<uint64_t> size;
  std::string body;  // "7BIT", "8BITMIME", "BINARYMIME" or empty
  bool smtputf8 = false;
  bool requiretls = false;      // RFC 8689 (MAIL)
  std::string ret, envid;       // DSN (MAIL)
  std::string notify, orcpt;    // DSN (RCPT)
  std::string auth;             // AUTH= (MAIL), accepted and ignored
};

enum class PathError { none, syntax, source_route, utf8_without_smtputf8, too_long, bad_parameter };

struct PathResult {
  PathError error = PathError::none;
  Address address;
  Parameters params;
  std::string detail;  // for bad_parameter
};

// "FROM:<path> params" (mail = true) or "TO:<path> params".
PathResult parse_path_command(std::string_view args, bool mail);

// A domain or address literal as given in EHLO/HELO.
bool valid_helo(std::string_view name);

}  // namespace postern::smtp
