// Helpers for the tests of the store-lmdb plugin's classes.
#pragma once

#include "db.hpp"

#include <functional>

namespace postern::test {

// Whether fn throws a StoreError with this status.
inline bool fails_with(const std::function<void()>& fn, int status) {
  try {
    fn();
  } catch (const store::StoreError& e) {
    return e.status == status;
  }
  return false;
}

}  // namespace postern::test
