// Who must use two-factor authentication, who may log in with password +
// code, and what a new password must be (issue: 2FA and password policy).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace postern::store {

// A list of "*" (everyone), "example.org" / "@example.org" (a domain) and
// "user@example.org" (one account).
class AccountSet {
 public:
  AccountSet() = default;
  explicit AccountSet(std::vector<std::string> entries) : entries_(std::move(entries)) {}
  bool contains(std::string_view address) const;
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<std::string> entries_;
};

struct AuthPolicy {
  AccountSet require_2fa;                 // must enrol before protocol logins
  AccountSet password_code{{"*"}};        // may log in with password + current code
  std::string code_separator;             // between password and code ("" = none)
  size_t password_min_length = 12;
  std::set<std::string> denied_passwords;  // lower-cased, from password_deny_list

  // Why password cannot be the password of address; nullopt when it can.
  std::optional<std::string> password_problem(std::string_view address, std::string_view password) const;
};

// Loads a deny list: one password per line (# comments), lower-cased.
std::optional<std::set<std::string>> load_deny_list(const std::string& path, std::string& error);

}  // namespace postern::store
