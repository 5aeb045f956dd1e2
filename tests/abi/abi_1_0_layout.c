/* Frozen layout of ABI 1.0 on LP64 (x86_64, aarch64): a plugin built against
 * the 1.0 headers must keep loading into every 1.x host, so no member of a
 * 1.0 struct may move or change size. This file is the committed
 * header-compatibility check: it fails to compile when abi.h breaks that.
 * Appending members (a minor bump) changes only the sizeof lines, which
 * are checked as lower bounds. Generated once from abi.h 1.0; never
 * regenerate it to make a failure go away. */
#include <postern/abi.h>

#include <stddef.h>
#include <stdio.h>

#if defined(__LP64__)
_Static_assert(sizeof(pst_str) >= 16, "pst_str size");
_Static_assert(offsetof(pst_str, data) == 0, "pst_str.data");
_Static_assert(offsetof(pst_str, len) == 8, "pst_str.len");
_Static_assert(sizeof(pst_error) >= 32, "pst_error size");
_Static_assert(offsetof(pst_error, struct_size) == 0, "pst_error.struct_size");
_Static_assert(offsetof(pst_error, buf) == 8, "pst_error.buf");
_Static_assert(offsetof(pst_error, cap) == 16, "pst_error.cap");
_Static_assert(offsetof(pst_error, len) == 24, "pst_error.len");
_Static_assert(sizeof(pst_log_field) >= 32, "pst_log_field size");
_Static_assert(offsetof(pst_log_field, key) == 0, "pst_log_field.key");
_Static_assert(offsetof(pst_log_field, value) == 16, "pst_log_field.value");
_Static_assert(sizeof(pst_conn_info_v1) >= 160, "pst_conn_info_v1 size");
_Static_assert(offsetof(pst_conn_info_v1, struct_size) == 0, "pst_conn_info_v1.struct_size");
_Static_assert(offsetof(pst_conn_info_v1, conn_id) == 8, "pst_conn_info_v1.conn_id");
_Static_assert(offsetof(pst_conn_info_v1, listener) == 16, "pst_conn_info_v1.listener");
_Static_assert(offsetof(pst_conn_info_v1, protocol) == 32, "pst_conn_info_v1.protocol");
_Static_assert(offsetof(pst_conn_info_v1, peer_addr) == 48, "pst_conn_info_v1.peer_addr");
_Static_assert(offsetof(pst_conn_info_v1, peer_port) == 64, "pst_conn_info_v1.peer_port");
_Static_assert(offsetof(pst_conn_info_v1, local_addr) == 72, "pst_conn_info_v1.local_addr");
_Static_assert(offsetof(pst_conn_info_v1, local_port) == 88, "pst_conn_info_v1.local_port");
_Static_assert(offsetof(pst_conn_info_v1, via_proxy) == 92, "pst_conn_info_v1.via_proxy");
_Static_assert(offsetof(pst_conn_info_v1, tls_mode) == 96, "pst_conn_info_v1.tls_mode");
_Static_assert(offsetof(pst_conn_info_v1, tls_active) == 100, "pst_conn_info_v1.tls_active");
_Static_assert(offsetof(pst_conn_info_v1, tls_version) == 104, "pst_conn_info_v1.tls_version");
_Static_assert(offsetof(pst_conn_info_v1, tls_cipher) == 120, "pst_conn_info_v1.tls_cipher");
_Static_assert(offsetof(pst_conn_info_v1, tls_sni) == 136, "pst_conn_info_v1.tls_sni");
_Static_assert(offsetof(pst_conn_info_v1, max_line) == 152, "pst_conn_info_v1.max_line");
_Static_assert(sizeof(pst_verdict_v1) >= 64, "pst_verdict_v1 size");
_Static_assert(offsetof(pst_verdict_v1, struct_size) == 0, "pst_verdict_v1.struct_size");
_Static_assert(offsetof(pst_verdict_v1, kind) == 4, "pst_verdict_v1.kind");
_Static_assert(offsetof(pst_verdict_v1, code) == 8, "pst_verdict_v1.code");
_Static_assert(offsetof(pst_verdict_v1, enhanced) == 16, "pst_verdict_v1.enhanced");
_Static_assert(offsetof(pst_verdict_v1, text) == 32, "pst_verdict_v1.text");
_Static_assert(offsetof(pst_verdict_v1, reason) == 48, "pst_verdict_v1.reason");
_Static_assert(sizeof(pst_host_v1) >= 200, "pst_host_v1 size");
_Static_assert(offsetof(pst_host_v1, struct_size) == 0, "pst_host_v1.struct_size");
_Static_assert(offsetof(pst_host_v1, abi_major) == 4, "pst_host_v1.abi_major");
_Static_assert(offsetof(pst_host_v1, abi_minor) == 6, "pst_host_v1.abi_minor");
_Static_assert(offsetof(pst_host_v1, log) == 8, "pst_host_v1.log");
_Static_assert(offsetof(pst_host_v1, config_root) == 16, "pst_host_v1.config_root");
_Static_assert(offsetof(pst_host_v1, config_type) == 24, "pst_host_v1.config_type");
_Static_assert(offsetof(pst_host_v1, config_get) == 32, "pst_host_v1.config_get");
_Static_assert(offsetof(pst_host_v1, config_size) == 40, "pst_host_v1.config_size");
_Static_assert(offsetof(pst_host_v1, config_at) == 48, "pst_host_v1.config_at");
_Static_assert(offsetof(pst_host_v1, config_key_at) == 56, "pst_host_v1.config_key_at");
_Static_assert(offsetof(pst_host_v1, config_string) == 64, "pst_host_v1.config_string");
_Static_assert(offsetof(pst_host_v1, config_integer) == 72, "pst_host_v1.config_integer");
_Static_assert(offsetof(pst_host_v1, config_float) == 80, "pst_host_v1.config_float");
_Static_assert(offsetof(pst_host_v1, config_boolean) == 88, "pst_host_v1.config_boolean");
_Static_assert(offsetof(pst_host_v1, config_error) == 96, "pst_host_v1.config_error");
_Static_assert(offsetof(pst_host_v1, timer_start) == 104, "pst_host_v1.timer_start");
_Static_assert(offsetof(pst_host_v1, timer_cancel) == 112, "pst_host_v1.timer_cancel");
_Static_assert(offsetof(pst_host_v1, work_submit) == 120, "pst_host_v1.work_submit");
_Static_assert(offsetof(pst_host_v1, counter_register) == 128, "pst_host_v1.counter_register");
_Static_assert(offsetof(pst_host_v1, counter_add) == 136, "pst_host_v1.counter_add");
_Static_assert(offsetof(pst_host_v1, conn_write) == 144, "pst_host_v1.conn_write");
_Static_assert(offsetof(pst_host_v1, conn_start_tls) == 152, "pst_host_v1.conn_start_tls");
_Static_assert(offsetof(pst_host_v1, conn_close) == 160, "pst_host_v1.conn_close");
_Static_assert(offsetof(pst_host_v1, conn_pause) == 168, "pst_host_v1.conn_pause");
_Static_assert(offsetof(pst_host_v1, conn_resume) == 176, "pst_host_v1.conn_resume");
_Static_assert(offsetof(pst_host_v1, conn_set_timeout) == 184, "pst_host_v1.conn_set_timeout");
_Static_assert(offsetof(pst_host_v1, conn_set_read_limit) == 192, "pst_host_v1.conn_set_read_limit");
_Static_assert(sizeof(pst_protocol_v1) >= 88, "pst_protocol_v1 size");
_Static_assert(offsetof(pst_protocol_v1, struct_size) == 0, "pst_protocol_v1.struct_size");
_Static_assert(offsetof(pst_protocol_v1, name) == 8, "pst_protocol_v1.name");
_Static_assert(offsetof(pst_protocol_v1, open) == 24, "pst_protocol_v1.open");
_Static_assert(offsetof(pst_protocol_v1, on_data) == 32, "pst_protocol_v1.on_data");
_Static_assert(offsetof(pst_protocol_v1, on_tls_ready) == 40, "pst_protocol_v1.on_tls_ready");
_Static_assert(offsetof(pst_protocol_v1, on_timeout) == 48, "pst_protocol_v1.on_timeout");
_Static_assert(offsetof(pst_protocol_v1, on_shutdown) == 56, "pst_protocol_v1.on_shutdown");
_Static_assert(offsetof(pst_protocol_v1, on_writable) == 64, "pst_protocol_v1.on_writable");
_Static_assert(offsetof(pst_protocol_v1, on_close) == 72, "pst_protocol_v1.on_close");
_Static_assert(offsetof(pst_protocol_v1, refuse) == 80, "pst_protocol_v1.refuse");
_Static_assert(sizeof(pst_filter_v1) >= 40, "pst_filter_v1 size");
_Static_assert(offsetof(pst_filter_v1, struct_size) == 0, "pst_filter_v1.struct_size");
_Static_assert(offsetof(pst_filter_v1, name) == 8, "pst_filter_v1.name");
_Static_assert(offsetof(pst_filter_v1, stages) == 24, "pst_filter_v1.stages");
_Static_assert(offsetof(pst_filter_v1, actions) == 28, "pst_filter_v1.actions");
_Static_assert(offsetof(pst_filter_v1, on_stage) == 32, "pst_filter_v1.on_stage");
_Static_assert(sizeof(pst_capability_v1) >= 16, "pst_capability_v1 size");
_Static_assert(offsetof(pst_capability_v1, struct_size) == 0, "pst_capability_v1.struct_size");
_Static_assert(offsetof(pst_capability_v1, kind) == 4, "pst_capability_v1.kind");
_Static_assert(offsetof(pst_capability_v1, table) == 8, "pst_capability_v1.table");
_Static_assert(sizeof(pst_plugin_v1) >= 88, "pst_plugin_v1 size");
_Static_assert(offsetof(pst_plugin_v1, struct_size) == 0, "pst_plugin_v1.struct_size");
_Static_assert(offsetof(pst_plugin_v1, abi_major) == 4, "pst_plugin_v1.abi_major");
_Static_assert(offsetof(pst_plugin_v1, abi_minor) == 6, "pst_plugin_v1.abi_minor");
_Static_assert(offsetof(pst_plugin_v1, name) == 8, "pst_plugin_v1.name");
_Static_assert(offsetof(pst_plugin_v1, version) == 24, "pst_plugin_v1.version");
_Static_assert(offsetof(pst_plugin_v1, init) == 40, "pst_plugin_v1.init");
_Static_assert(offsetof(pst_plugin_v1, start) == 48, "pst_plugin_v1.start");
_Static_assert(offsetof(pst_plugin_v1, stop) == 56, "pst_plugin_v1.stop");
_Static_assert(offsetof(pst_plugin_v1, fini) == 64, "pst_plugin_v1.fini");
_Static_assert(offsetof(pst_plugin_v1, capabilities) == 72, "pst_plugin_v1.capabilities");
_Static_assert(offsetof(pst_plugin_v1, capability_count) == 80, "pst_plugin_v1.capability_count");
#endif

_Static_assert(PST_ABI_MAJOR == 1, "ABI major changed: this file pins 1.x");
_Static_assert(PST_STAGE_OUTBOUND == 8 && PST_VERDICT_QUARANTINE == 5 && PST_CAP_TRANSPORT == 5,
               "1.0 enum values are part of the ABI");
_Static_assert(PST_OK == 0 && PST_PENDING == 1 && PST_ERR_TYPE == -8, "1.0 status codes are part of the ABI");

int main(void) {
  printf("plugin ABI %s keeps the 1.0 layout\n", PST_ABI_VERSION_STRING);
  return 0;
}
