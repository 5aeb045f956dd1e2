#!/usr/bin/env bash
# doctest reads commas in --test-case as a list of filters, and CMake reads
# semicolons as list separators: a CTest entry for a test case whose name has
# either runs nothing and passes. Refuse them.
set -euo pipefail
root=$1
if grep -n 'TEST_CASE("[^"]*[,;][^"]*")' "$root"/tests/unit/*.cpp; then
  echo "test case names must not contain commas or semicolons (doctest and CMake split on them)" >&2
  exit 1
fi
