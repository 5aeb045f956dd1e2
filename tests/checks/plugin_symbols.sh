#!/usr/bin/env bash
# Every plugin exports exactly pst_abi_version and pst_plugin_entry, and no
# STB_GNU_UNIQUE symbol (which would pin its image in memory after
# dlclose and break hot reload).
set -euo pipefail
status=0
count=0
for so in "$@"; do
  [ "$(basename "$so")" = not_a_plugin.so ] && continue
  count=$((count + 1))
  syms=$(readelf --dyn-syms -W "$so" | awk 'NR > 3 && $7 != "UND" && $4 != "SECTION" && $8 != "" {print $5, $8}')
  if grep -q '^UNIQUE' <<<"$syms"; then
    echo "FAIL $so has STB_GNU_UNIQUE symbols:"; grep '^UNIQUE' <<<"$syms"; status=1
  fi
  exported=$(awk '{print $2}' <<<"$syms" | sort -u | tr '\n' ' ')
  if [ "$exported" != "pst_abi_version pst_plugin_entry " ]; then
    echo "FAIL $so exports: $exported"; status=1
  fi
done
[ "$count" -gt 0 ] || { echo "FAIL no plugins given"; exit 1; }
[ $status -eq 0 ] && echo "ok: $count plugins export only the two pst_ symbols, none GNU-unique"
exit $status
