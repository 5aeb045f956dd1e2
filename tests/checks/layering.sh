#!/usr/bin/env bash
# Plugins see only the SDK: no file under plugins/, tests/plugins/ or sdk/
# includes a header from core/ (by path or by a core-only name).
set -euo pipefail
cd "$1"
core_headers=$(cd core && find . -name '*.hpp' -printf '%P\n' | sed 's/\./\\./g' | paste -sd '|')
bad=$(grep -rnE "#\s*include\s*[<\"]((\.\./)*core/|($core_headers)[>\"])" plugins tests/plugins sdk || true)
if [ -n "$bad" ]; then
  echo "FAIL: plugin or SDK code includes core headers:"; echo "$bad"; exit 1
fi
echo "ok: plugins/, tests/plugins/ and sdk/ include no core header"
