// Password verifiers: Argon2id for PLAIN/LOGIN, SCRAM-SHA-256 for SCRAM,
// both made from the same password at the same time.
#pragma once

#include <postern/scram.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::store {

struct Argon2Params {
  // OWASP's current minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
  uint32_t memory_kib = 19456;
  uint32_t iterations = 2;
  uint32_t parallelism = 1;
};

constexpr uint32_t kScramIterations = 4096;  // RFC 7677's minimum
constexpr size_t kMaxPasswordBytes = 1024;

// "$argon2id$v=19$m=...,t=...,p=...$salt$hash"
std::string argon2id_hash(std::string_view password, const Argon2Params& params);
// Constant-time inside libargon2. False also for a malformed encoding.
bool argon2id_verify(std::string_view encoded, std::string_view password);

sdk::scram::Verifier scram_verifier(std::string_view password);

// A new password must be 8..1024 bytes of UTF-8 without control characters.
std::optional<std::string> password_problem(std::string_view password);

}  // namespace postern::store
