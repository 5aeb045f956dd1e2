/* Test plugin that declares another ABI version (ABI_STRING). The host must
 * refuse it before running any of its code: its constructor, which would
 * create the file named by $POSTERN_TEST_MARKER, must never run. */
#include <postern/abi.h>

#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void leave_marker(void) {
  const char* path = getenv("POSTERN_TEST_MARKER");
  if (!path) return;
  FILE* f = fopen(path, "w");
  if (f) fclose(f);
}

PST_EXPORT const char pst_abi_version[] = ABI_STRING;

static const pst_plugin_v1 descriptor = {sizeof(pst_plugin_v1), 2, 0, {"abi", 3}, {"0", 1}, 0, 0, 0, 0, 0, 0};

PST_EXPORT const pst_plugin_v1* pst_plugin_entry(const pst_host_v1* host) {
  (void)host;
  leave_marker();
  return &descriptor;
}
