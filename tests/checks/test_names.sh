#!/usr/bin/env bash
# doctest reads commas in --test-case as a list of filters, so a CTest entry
# for a test case whose name has a comma runs nothing and passes. Refuse them.
set -euo pipefail
root=$1
if grep -n 'TEST_CASE("[^"]*,[^"]*")' "$root"/tests/unit/*.cpp; then
  echo "test case names must not contain commas (doctest splits filters on them)" >&2
  exit 1
fi
