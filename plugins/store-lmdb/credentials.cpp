#include "credentials.hpp"

#include "crypto.hpp"

#include <argon2.h>

#include <stdexcept>
#include <vector>

namespace postern::store {

std::string argon2id_hash(std::string_view password, const Argon2Params& p) {
  std::string salt = random_bytes(16);
  constexpr size_t kHashBytes = 32;
  size_t encoded_len = argon2_encodedlen(p.iterations, p.memory_kib, p.parallelism, static_cast<uint32_t>(salt.size()),
                                         kHashBytes, Argon2_id);
  std::vector<char> encoded(encoded_len);
  int rc = argon2id_hash_encoded(p.iterations, p.memory_kib, p.parallelism, password.data(), password.size(),
                                 salt.data(), salt.size(), kHashBytes, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) throw std::runtime_error(std::string("argon2id: ") + argon2_error_message(rc));
  return std::string(encoded.data());
}

bool argon2id_verify(std::string_view encoded, std::string_view password) {
  std::string enc(encoded);  // libargon2 wants a NUL-terminated string
  return ::argon2id_verify(enc.c_str(), password.data(), password.size()) == ARGON2_OK;
}

sdk::scram::Verifier scram_verifier(std::string_view password) {
  return sdk::scram::make_verifier(password, random_bytes(16), kScramIterations);
}

std::optional<std::string> password_problem(std::string_view password) {
  if (password.size() < 8) return "the password must have at least 8 characters";
  if (password.size() > kMaxPasswordBytes) return "the password is longer than 1024 bytes";
  for (unsigned char c : password)
    if (c < 0x20 || c == 0x7f) return "the password must not contain control characters";
  return std::nullopt;
}

}  // namespace postern::store
