/* Test plugin in plain C11 against abi.h alone: the "upper" protocol
 * answers each line in upper case ("QUIT" closes). Proves the C ABI needs
 * no C++ on the plugin side. Config: prefix = "..." (optional). */
#include <postern/abi.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 1024

typedef struct upper_plugin {
  const pst_host_v1* host;
  pst_host_ctx* ctx;
  char prefix[64];
  size_t prefix_len;
} upper_plugin;

typedef struct upper_session {
  upper_plugin* plugin;
  pst_conn* conn;
  char line[MAX_LINE];
  size_t len;
  int overflow;
} upper_session;

static const pst_host_v1* g_host;

static pst_str cstr(const char* s) {
  pst_str r = {s, strlen(s)};
  return r;
}

static void write_str(pst_conn* conn, const char* data, size_t len) {
  g_host->conn_write(conn, (const uint8_t*)data, len);
}

static void* upper_init(const pst_host_v1* host, pst_host_ctx* ctx, pst_error* err) {
  const pst_config* root = host->config_root(ctx);
  int bad = 0;
  for (size_t i = 0; i < host->config_size(root); ++i) {
    pst_str key;
    if (host->config_key_at(root, i, &key) != PST_OK) continue;
    if (!(key.len == 6 && memcmp(key.data, "prefix", 6) == 0)) {
      host->config_error(ctx, host->config_get(ctx, root, key), cstr("unknown key"));
      bad = 1;
    }
  }
  upper_plugin* p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->host = host;
  p->ctx = ctx;
  const pst_config* prefix = host->config_get(ctx, root, cstr("prefix"));
  if (prefix) {
    pst_str s;
    if (host->config_string(prefix, &s) != PST_OK || s.len >= sizeof p->prefix) {
      host->config_error(ctx, prefix, cstr("expected a string of at most 63 bytes"));
      bad = 1;
    } else {
      memcpy(p->prefix, s.data, s.len);
      p->prefix_len = s.len;
    }
  }
  if (bad) {
    const char* msg = "invalid configuration";
    size_t n = strlen(msg) < err->cap ? strlen(msg) : err->cap;
    memcpy(err->buf, msg, n);
    err->len = n;
    free(p);
    return NULL;
  }
  return p;
}

static void upper_fini(void* instance) { free(instance); }

static void* upper_open(void* instance, pst_conn* conn, const pst_conn_info_v1* info) {
  (void)info;
  upper_session* s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->plugin = instance;
  s->conn = conn;
  const char* hello = "UPPER ready\r\n";
  write_str(conn, hello, strlen(hello));
  return s;
}

static void handle_line(upper_session* s) {
  if (s->len > 0 && s->line[s->len - 1] == '\r') s->len--;
  if (s->overflow) {
    const char* msg = "ERR too long\r\n";
    write_str(s->conn, msg, strlen(msg));
  } else if (s->len == 4 && memcmp(s->line, "QUIT", 4) == 0) {
    write_str(s->conn, "BYE\r\n", 5);
    g_host->conn_close(s->conn);
  } else {
    char out[MAX_LINE + 80];
    size_t n = 0;
    memcpy(out, s->plugin->prefix, s->plugin->prefix_len);
    n += s->plugin->prefix_len;
    for (size_t i = 0; i < s->len; ++i) out[n++] = (char)toupper((unsigned char)s->line[i]);
    out[n++] = '\r';
    out[n++] = '\n';
    write_str(s->conn, out, n);
  }
  s->len = 0;
  s->overflow = 0;
}

static pst_status upper_on_data(void* session, const uint8_t* data, size_t len) {
  upper_session* s = session;
  for (size_t i = 0; i < len; ++i) {
    if (data[i] == '\n') {
      handle_line(s);
    } else if (s->len < MAX_LINE) {
      s->line[s->len++] = (char)data[i];
    } else {
      s->overflow = 1;
    }
  }
  return PST_OK;
}

static pst_status upper_on_tls_ready(void* session, const pst_conn_info_v1* info) {
  (void)session;
  (void)info;
  return PST_OK;
}

static void upper_on_timeout(void* session) { (void)session; }

static void upper_on_shutdown(void* session) {
  upper_session* s = session;
  write_str(s->conn, "BYE shutting down\r\n", 19);
  g_host->conn_close(s->conn);
}

static void upper_on_writable(void* session) { (void)session; }
static void upper_on_close(void* session) { free(session); }

static const pst_protocol_v1 upper_protocol = {
    sizeof(pst_protocol_v1), {"upper", 5}, upper_open, upper_on_data, upper_on_tls_ready,
    upper_on_timeout, upper_on_shutdown, upper_on_writable, upper_on_close, NULL,
};

static const pst_capability_v1 upper_capabilities[] = {
    {sizeof(pst_capability_v1), PST_CAP_PROTOCOL, &upper_protocol},
};

static const pst_plugin_v1 upper_descriptor = {
    sizeof(pst_plugin_v1), PST_ABI_MAJOR, PST_ABI_MINOR, {"upper", 5}, {"1.0.0", 5},
    upper_init, NULL, NULL, upper_fini, upper_capabilities, 1,
};

PST_DECLARE_PLUGIN_SYMBOLS

PST_EXPORT const pst_plugin_v1* pst_plugin_entry(const pst_host_v1* host) {
  g_host = host;
  return &upper_descriptor;
}
