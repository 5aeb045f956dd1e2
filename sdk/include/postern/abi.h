/*
 * Postern plugin ABI — the binary contract between posternd and its plugins.
 *
 * This header is plain C (C11 and C++20 both compile it) and is the only
 * thing that crosses the boundary. Rules, so that a plugin built against
 * ABI 1.x keeps loading into any host that speaks 1.x:
 *
 *  - Every struct that crosses starts with `uint32_t struct_size`. New fields
 *    are appended at the end only; each side reads a field only when the
 *    other side's struct_size covers it (PST_HAS_FIELD below).
 *  - Function tables are append-only. A new entry is a minor bump.
 *  - Strings are (pointer, length) pairs (pst_str); none is NUL-terminated
 *    unless a comment says so. A pst_str handed to a callback is valid only
 *    during that call (BORROWED); copy what you keep.
 *  - No exceptions, no C++ types, no heap ownership across the boundary:
 *    whoever allocates frees, through its own function.
 *  - Errors are pst_status codes; where a message helps, the callee writes it
 *    into a caller-owned pst_error buffer.
 *
 * Naming: `pst_*_v1` structs are tables or records; `pst_host_v1` members
 * are host services the plugin calls; members of pst_plugin_v1,
 * pst_protocol_v1 and pst_filter_v1 are hooks the plugin implements.
 *
 * Threads: posternd runs one event loop per core. A connection (and every
 * protocol hook for its session) lives on one loop thread for its whole
 * life. Host services marked LOOP-THREAD must be called from the thread that
 * is running a hook or completion the host delivered. Completions say where
 * they run. Plugins must not create threads: use work_submit.
 *
 * Changelog (newest last; a minor bump for every appended member):
 *   1.0  2026-11-28  first version: descriptor, host services (log, config,
 *                    timers, worker pool, counters, connection I/O),
 *                    protocol handler table, pipeline stages and verdicts.
 *   1.1  2026-11-28  services: call/call_reply and the pst_service_v1
 *                    capability (PST_CAP_SERVICE); notifications
 *                    (subscribe/unsubscribe/publish); server_path; status
 *                    codes RETRYABLE, EXISTS, DENIED, QUOTA.
 *   1.2  2026-11-28  the message pipeline: txn_begin/end/set/get/run for
 *                    protocols, txn_add_header/add_result/add_score for
 *                    filters (pst_filter_v1 tables run in [pipeline] order).
 *   1.3  2026-11-28  the verdict PST_VERDICT_HOLD (keep the message in the
 *                    quarantine; a 1.2 host turns it into TEMPFAIL);
 *                    txn_replace_message, txn_add_rcpt, txn_del_rcpt for
 *                    filters (milters change messages and recipients).
 *   1.4  2026-11-28  outbound connections: conn_connect (pst_connect_v1)
 *                    opens a client connection served by the plugin's own
 *                    protocol table; conn_start_tls on it is the client
 *                    side, verifying the server by PKIX or DANE; the
 *                    verification result in pst_conn_info_v1 (tls_verified,
 *                    tls_dane, tls_verify_error, tls_peer_name); conn_post
 *                    runs plugin code on a connection's loop thread;
 *                    txn_begin with conn NULL (the outbound stage).
 */
#ifndef POSTERN_ABI_H
#define POSTERN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PST_ABI_MAJOR 1
#define PST_ABI_MINOR 4
/* Exported as pst_abi_version by every plugin: "MAJOR.MINOR", where MINOR is
 * the lowest host minor the plugin needs. The host reads it before running
 * any plugin code and refuses a different major or a higher minor. */
#define PST_ABI_VERSION_STRING "1.4"

#define PST_EXPORT __attribute__((visibility("default")))

/* Symbols every plugin exports (PST_DECLARE_PLUGIN_SYMBOLS in C). */
#define PST_SYMBOL_ABI_VERSION "pst_abi_version"
#define PST_SYMBOL_ENTRY "pst_plugin_entry"

/* True when a struct received from the other side is large enough to hold
 * FIELD: read newer fields only behind this check. */
#define PST_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

/* ------------------------------------------------------------------ */
/* Basic types                                                         */

typedef int32_t pst_status;
enum {
  PST_OK = 0,              /* done */
  PST_PENDING = 1,         /* will complete later, exactly once */
  PST_ERR = -1,            /* generic failure */
  PST_ERR_INVALID = -2,    /* bad argument or bad input */
  PST_ERR_UNSUPPORTED = -3,
  PST_ERR_CLOSED = -4,     /* connection closed / generation retiring */
  PST_ERR_LIMIT = -5,      /* a configured limit was hit */
  PST_ERR_CANCELLED = -6,  /* the operation was cancelled */
  PST_ERR_NOT_FOUND = -7,
  PST_ERR_TYPE = -8,       /* config value has another type */
  /* 1.1 */
  PST_ERR_RETRYABLE = -9,  /* temporary: try again later (SMTP 451, IMAP NO [UNAVAILABLE]) */
  PST_ERR_EXISTS = -10,    /* the thing to create exists already */
  PST_ERR_DENIED = -11,    /* credentials or permission refused */
  PST_ERR_QUOTA = -12      /* over quota */
};

typedef struct pst_str {
  const char* data;
  size_t len;
} pst_str;

/* A caller-owned buffer the callee may fill with a message (UTF-8, no NUL
 * needed). The callee writes at most cap bytes and sets len. */
typedef struct pst_error {
  uint32_t struct_size;
  char* buf;
  size_t cap;
  size_t len;
} pst_error;

/* Opaque handles owned by the host. */
typedef struct pst_host_ctx pst_host_ctx;   /* one per plugin generation */
typedef struct pst_config pst_config;       /* a node of the plugin's config */
typedef struct pst_conn pst_conn;           /* one client connection */
typedef struct pst_txn pst_txn;             /* one pipeline transaction */
typedef struct pst_call pst_call;           /* a service call being handled (1.1) */

/* ------------------------------------------------------------------ */
/* Logging                                                             */

typedef enum pst_log_level {
  PST_LOG_DEBUG = 0,
  PST_LOG_INFO = 1,
  PST_LOG_NOTICE = 2,
  PST_LOG_WARNING = 3,
  PST_LOG_ERROR = 4
} pst_log_level;

typedef struct pst_log_field {
  pst_str key;   /* [a-z0-9_.]+ */
  pst_str value; /* any bytes; the host quotes and escapes */
} pst_log_field;

/* ------------------------------------------------------------------ */
/* Configuration nodes                                                 */

typedef enum pst_config_type {
  PST_CONFIG_NONE = 0, /* absent */
  PST_CONFIG_TABLE,
  PST_CONFIG_ARRAY,
  PST_CONFIG_STRING,
  PST_CONFIG_INTEGER,
  PST_CONFIG_FLOAT,
  PST_CONFIG_BOOLEAN,
  PST_CONFIG_DATETIME
} pst_config_type;

/* ------------------------------------------------------------------ */
/* Connections                                                          */

typedef enum pst_tls_mode {
  PST_TLS_NONE = 0,     /* plaintext listener, no STARTTLS */
  PST_TLS_STARTTLS = 1, /* plaintext until start_tls() */
  PST_TLS_IMPLICIT = 2  /* TLS from the first byte */
} pst_tls_mode;

/* What the host knows about a connection. BORROWED: valid during the hook
 * that receives it. peer_* is the real client (after a PROXY header when
 * via_proxy is 1). */
typedef struct pst_conn_info_v1 {
  uint32_t struct_size;
  uint64_t conn_id;
  pst_str listener;      /* [listeners.NAME] */
  pst_str protocol;
  pst_str peer_addr;     /* textual IPv4 or IPv6, no brackets */
  uint16_t peer_port;
  pst_str local_addr;
  uint16_t local_port;
  uint32_t via_proxy;
  uint32_t tls_mode;     /* pst_tls_mode of the listener */
  uint32_t tls_active;   /* 1 once the handshake completed */
  pst_str tls_version;   /* "TLSv1.3"; empty without TLS */
  pst_str tls_cipher;
  pst_str tls_sni;       /* server name the client asked for; may be empty */
  uint32_t max_line;     /* per-listener line limit the protocol enforces */
  /* 1.4: on connections the plugin opened (conn_connect); 0 / empty on
   * accepted ones. Set once the handshake completed. */
  uint32_t outbound;        /* 1: opened by conn_connect */
  uint32_t tls_verified;    /* 1: the server's certificate passed the
                               verification pst_connect_v1 asked for */
  uint32_t tls_dane;        /* 1: verified by a TLSA record (DANE) */
  pst_str tls_verify_error; /* why not verified: OpenSSL's reason, e.g.
                               "certificate has expired"; empty when verified */
  pst_str tls_peer_name;    /* the name the certificate matched (SNI/MX host) */
} pst_conn_info_v1;

/* How conn_start_tls checks the server on an outbound connection (1.4).
 * The handshake completes whatever the outcome; the result arrives in
 * on_tls_ready (tls_verified, tls_verify_error) and the protocol decides:
 * a policy that requires verification closes before sending anything. */
typedef enum pst_tls_verify {
  PST_VERIFY_NONE = 0, /* opportunistic: no check (the result is still reported) */
  PST_VERIFY_PKIX = 1, /* a chain to ca_file (or the system's CAs) naming server_name */
  PST_VERIFY_DANE = 2  /* RFC 7672: the certificate matches one of the TLSA records */
} pst_tls_verify;

/* Why the host refuses a connection before opening a session. */
typedef enum pst_refuse_reason {
  PST_REFUSE_LISTENER_FULL = 1, /* max_connections reached */
  PST_REFUSE_PEER_FULL = 2,     /* max_per_ip reached */
  PST_REFUSE_SHUTTING_DOWN = 3,
  /* Since 1.2's guard: the "guard" service refused the peer before the
   * greeting. A plugin that does not know a reason answers "busy". */
  PST_REFUSE_DENIED = 4, /* a deny list or a ban: 554 / BYE, do not retry soon */
  PST_REFUSE_RATE = 5    /* too many connections or too fast from the peer's network */
} pst_refuse_reason;

/* ------------------------------------------------------------------ */
/* Pipeline (stages and verdicts; the pipeline runner arrives with SMTP) */

typedef enum pst_stage {
  PST_STAGE_CONNECT = 0,
  PST_STAGE_HELO,
  PST_STAGE_AUTH,
  PST_STAGE_MAIL_FROM,
  PST_STAGE_RCPT_TO,
  PST_STAGE_DATA_HEADERS,
  PST_STAGE_DATA_END,
  PST_STAGE_QUEUED,
  PST_STAGE_OUTBOUND,
  PST_STAGE_COUNT
} pst_stage;
#define PST_STAGE_BIT(s) (1u << (s))

typedef enum pst_verdict_kind {
  PST_VERDICT_CONTINUE = 0, /* next filter */
  PST_VERDICT_ACCEPT,       /* skip the remaining filters of this stage */
  PST_VERDICT_REJECT,       /* permanent failure (5xx) */
  PST_VERDICT_TEMPFAIL,     /* temporary failure (4xx) */
  PST_VERDICT_DISCARD,      /* accept and drop silently */
  PST_VERDICT_QUARANTINE,   /* accept into the recipients' Junk folders */
  PST_VERDICT_HOLD          /* (1.3) accept into the quarantine: delivered to
                               nobody until an operator releases it */
} pst_verdict_kind;

/* Mutations a filter may make; the host refuses undeclared ones. */
enum {
  PST_FILTER_ADD_HEADER = 1u << 0,
  PST_FILTER_REMOVE_HEADER = 1u << 1,
  PST_FILTER_CHANGE_RCPT = 1u << 2,
  PST_FILTER_SET_SCORE = 1u << 3,
  PST_FILTER_QUARANTINE = 1u << 4,
  PST_FILTER_REPLACE_BODY = 1u << 5
};

typedef struct pst_verdict_v1 {
  uint32_t struct_size;
  uint32_t kind;     /* pst_verdict_kind */
  uint16_t code;     /* reply code for reject/tempfail, 0 = default */
  pst_str enhanced;  /* "5.7.1"; may be empty */
  pst_str text;      /* reply text shown to the client */
  pst_str reason;    /* for the log, never shown to the client */
} pst_verdict_v1;

/* ------------------------------------------------------------------ */
/* Completion callbacks (plugin code the host calls back)              */

/* A timer fired (status PST_OK) or was cancelled (PST_ERR_CANCELLED: by
 * timer_cancel, by the connection closing, or by the generation retiring).
 * Called exactly once per started timer, on the connection's loop thread
 * when the timer is bound to a connection, otherwise on a loop thread. */
typedef void (*pst_timer_fn)(void* user, pst_status status);

/* Runs on a worker-pool thread; may block. Never touch a pst_conn here. */
typedef void (*pst_work_fn)(void* user);
/* Called exactly once per submitted job: PST_OK after work ran;
 * PST_ERR_CANCELLED when the generation retired before the job started
 * (work did not run); PST_ERR_CLOSED when work ran but the bound connection
 * closed meanwhile (its pst_conn is gone: do not touch it). Runs on the
 * bound connection's loop thread, or a loop thread if unbound. */
typedef void (*pst_work_done_fn)(void* user, pst_status status);

/* A service call completed (1.1). reply is BORROWED for this call: on
 * success the service's answer, on failure a UTF-8 message (may be empty).
 * Runs exactly once, on the bound connection's loop thread (PST_ERR_CLOSED
 * if it closed meanwhile: do not touch it), or a loop thread if unbound. */
typedef void (*pst_call_done_fn)(void* user, pst_status status, const uint8_t* reply, size_t len);

/* A notification (1.1): at-most-once hint that something under topic
 * changed; payload is BORROWED. Runs on the subscription's connection
 * thread, or a loop thread. Never the only way to learn about a change:
 * re-read state periodically too. */
typedef void (*pst_notify_fn)(void* user, pst_str topic, const uint8_t* payload, size_t len);

/* A pipeline stage finished (1.2): the combined verdict of the filters
 * that ran (CONTINUE when none objected). BORROWED. Runs exactly once on
 * the transaction's connection thread; verdict is NULL when that
 * connection closed meanwhile (free what user holds, touch nothing). */
typedef void (*pst_stage_done_fn)(void* user, const pst_verdict_v1* verdict);

/* An outbound connection could not be made (1.4): refused, unreachable,
 * timed out, or the implicit-TLS handshake failed. reason is BORROWED.
 * Runs once, on a loop thread, instead of the protocol's open. */
typedef void (*pst_connect_failed_fn)(void* user, pst_status status, pst_str reason);

/* What conn_connect opens (1.4). pst_protocol_v1 is declared below. */
struct pst_protocol_v1;
typedef struct pst_connect_v1 {
  uint32_t struct_size;
  pst_str address;            /* IPv4 or IPv6, numeric, no brackets */
  uint16_t port;
  uint32_t tls_mode;          /* PST_TLS_STARTTLS: plaintext until conn_start_tls;
                                 PST_TLS_IMPLICIT: TLS before open */
  pst_str server_name;        /* sent as SNI; the name PKIX checks */
  uint32_t verify;            /* pst_tls_verify */
  pst_str ca_file;            /* PEM trust anchors for PKIX; empty = the system's */
  const pst_str* tlsa;        /* for DANE: "usage selector mtype hex" each */
  size_t tlsa_count;
  uint64_t connect_timeout_ms; /* 0 = 30 s */
  uint64_t idle_timeout_ms;   /* 0 = 300 s (RFC 5321 §4.5.3.2's longest wait) */
  uint32_t max_line;          /* 0 = 1000 */
  const struct pst_protocol_v1* protocol;
  void* user;                 /* handed to protocol->open as its instance */
  pst_connect_failed_fn failed;
} pst_connect_v1;

typedef enum pst_server_path {
  PST_PATH_DATA_DIR = 1,   /* [server] data_dir: persistent state */
  PST_PATH_RUNTIME_DIR = 2 /* [server] runtime_dir */
} pst_server_path;

/* ------------------------------------------------------------------ */
/* Host services                                                        */

typedef struct pst_host_v1 {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;

  /* --- logging (any thread) --- */
  void (*log)(pst_host_ctx* ctx, pst_log_level level, pst_str event,
              const pst_log_field* fields, size_t field_count);

  /* --- configuration (the plugin's [plugins.NAME] table, read-only) ---
   * Nodes live until fini; the host owns them. Lookups on a NULL node or a
   * missing key return NULL, whose type is PST_CONFIG_NONE. */
  const pst_config* (*config_root)(pst_host_ctx* ctx);
  pst_config_type (*config_type)(const pst_config* node);
  const pst_config* (*config_get)(pst_host_ctx* ctx, const pst_config* table,
                                  pst_str key);
  size_t (*config_size)(const pst_config* node); /* table keys / array items */
  const pst_config* (*config_at)(pst_host_ctx* ctx, const pst_config* node,
                                 size_t index);
  /* The key of the index-th member of a table (BORROWED until fini). */
  pst_status (*config_key_at)(const pst_config* table, size_t index,
                              pst_str* key_out);
  pst_status (*config_string)(const pst_config* node, pst_str* out);
  pst_status (*config_integer)(const pst_config* node, int64_t* out);
  pst_status (*config_float)(const pst_config* node, double* out);
  pst_status (*config_boolean)(const pst_config* node, uint32_t* out);
  /* Records a configuration error at node (file, line and key path are added
   * by the host). The plugin's init must then fail. */
  void (*config_error)(pst_host_ctx* ctx, const pst_config* node,
                       pst_str message);

  /* --- timers --- bound to conn (may be NULL). LOOP-THREAD when conn is
   * given. The callback runs exactly once (see pst_timer_fn). */
  pst_status (*timer_start)(pst_host_ctx* ctx, pst_conn* conn,
                            uint64_t delay_ms, pst_timer_fn fn, void* user,
                            uint64_t* timer_id_out);
  /* Cancels a pending timer; its callback still runs, with CANCELLED. */
  pst_status (*timer_cancel)(pst_host_ctx* ctx, uint64_t timer_id);

  /* --- worker pool (bounded). done runs exactly once. --- */
  pst_status (*work_submit)(pst_host_ctx* ctx, pst_conn* conn,
                            pst_work_fn work, pst_work_done_fn done,
                            void* user);

  /* --- metrics counters (any thread) --- */
  pst_status (*counter_register)(pst_host_ctx* ctx, pst_str name,
                                 pst_str help, uint32_t* counter_id_out);
  void (*counter_add)(pst_host_ctx* ctx, uint32_t counter_id, uint64_t delta);

  /* --- connection I/O for protocol plugins (LOOP-THREAD) --- */
  /* Queues bytes; the host copies them. PST_ERR_LIMIT: queued, but the
   * output is now over the listener's write_buffer: stop writing until
   * on_writable. Past 4x write_buffer nothing is queued and the host
   * closes the connection. PST_ERR_CLOSED after conn_close. */
  pst_status (*conn_write)(pst_conn* conn, const uint8_t* data, size_t len);
  /* Flushes queued output, then runs the TLS handshake. Bytes the client
   * sent before the handshake are discarded (STARTTLS injection); no
   * on_data arrives until on_tls_ready. */
  pst_status (*conn_start_tls)(pst_conn* conn);
  /* Flushes queued output, then closes. on_close follows. */
  pst_status (*conn_close)(pst_conn* conn);
  /* Stops / restarts delivery of on_data (backpressure, async work). */
  pst_status (*conn_pause)(pst_conn* conn);
  pst_status (*conn_resume)(pst_conn* conn);
  /* Idle timeout from now on; 0 restores the listener's. */
  pst_status (*conn_set_timeout)(pst_conn* conn, uint64_t timeout_ms);
  /* Largest chunk one on_data call may carry (≤ listener read_buffer). */
  pst_status (*conn_set_read_limit)(pst_conn* conn, size_t max_bytes);

  /* --- 1.1: services --- (check PST_HAS_FIELD before use) */
  /* Calls `method` of the plugin that provides `service` (PST_CAP_SERVICE).
   * The request bytes are copied. done runs exactly once (see
   * pst_call_done_fn); PST_ERR_NOT_FOUND there when no enabled plugin
   * provides the service. conn may be NULL; LOOP-THREAD when given. */
  pst_status (*call)(pst_host_ctx* ctx, pst_conn* conn, pst_str service, pst_str method,
                     const uint8_t* request, size_t len, pst_call_done_fn done, void* user);
  /* Completes a call this plugin's service received, exactly once, from
   * any thread (a worker job, typically). The reply bytes are copied. */
  void (*call_reply)(pst_call* call, pst_status status, const uint8_t* reply, size_t len);

  /* --- 1.1: notifications --- */
  pst_status (*subscribe)(pst_host_ctx* ctx, pst_conn* conn, pst_str topic, pst_notify_fn fn, void* user,
                          uint64_t* subscription_out);
  /* After this returns, fn is never called again for the subscription. */
  pst_status (*unsubscribe)(pst_host_ctx* ctx, uint64_t subscription);
  /* Any thread. Subscribers of exactly `topic` are told, asynchronously. */
  void (*publish)(pst_host_ctx* ctx, pst_str topic, const uint8_t* payload, size_t len);

  /* --- 1.1: server paths (absolute, BORROWED until fini) --- */
  pst_status (*server_path)(pst_host_ctx* ctx, pst_server_path which, pst_str* out);

  /* --- 1.2: the message pipeline, for protocol plugins (LOOP-THREAD) ---
   * A transaction carries named fields the protocol sets ("helo",
   * "mail_from", "rcpt" (appends), "auth_user", "message", "authserv_id";
   * the host sets "peer", "peer_port" (1.3), "listener", "tls_version",
   * "tls_cipher") and
   * runs the filters of a stage over them. The filters in force when the
   * transaction began serve it to the end, even across a reload. */
  pst_txn* (*txn_begin)(pst_host_ctx* ctx, pst_conn* conn);
  /* (1.4: conn may be NULL, for a transaction of no connection: the
   * outbound transport runs PST_STAGE_OUTBOUND so; its completions run on
   * a loop thread. Any thread may begin one.) */
  /* Logs the transaction as one line with every filter's verdict, then
   * frees it. Not while a stage runs. */
  void (*txn_end)(pst_txn* txn);
  pst_status (*txn_set)(pst_txn* txn, pst_str field, pst_str value);
  /* index: for repeated fields; the value is BORROWED until the next
   * txn_set or txn_end. Read-only fields the host assembles:
   * "add_header" (each "Name: value" a filter added, in order),
   * "authentication_results" (RFC 8601, from the filters' results;
   * absent when no filter added one) and
   * "score" (decimal). */
  pst_status (*txn_get)(pst_txn* txn, pst_str field, size_t index, pst_str* out);
  /* Runs stage's filters in order; done runs exactly once (see above). A
   * filter that does not answer within [pipeline] stage_timeout gets the
   * configured default_action. */
  pst_status (*txn_run)(pst_txn* txn, pst_stage stage, pst_stage_done_fn done, void* user);

  /* --- 1.2: for filters, from on_stage until their verdict (any thread) ---
   * Each needs the matching PST_FILTER_* action declared; otherwise
   * PST_ERR_UNSUPPORTED and nothing changes. */
  pst_status (*txn_add_header)(pst_txn* txn, pst_str name, pst_str value);
  /* One resinfo of Authentication-Results, e.g. "spf=pass smtp.mailfrom=a@b"
   * (needs PST_FILTER_ADD_HEADER). */
  pst_status (*txn_add_result)(pst_txn* txn, pst_str result);
  pst_status (*txn_add_score)(pst_txn* txn, int32_t delta);

  /* --- 1.3: for filters at data_end (same rules as above) ---
   * The whole message (header and body) replaced: later filters and the
   * protocol see the new one ("message"; "message_replaced" is set).
   * Needs PST_FILTER_REPLACE_BODY. */
  pst_status (*txn_replace_message)(pst_txn* txn, pst_str message);
  /* An envelope recipient added or removed (PST_FILTER_CHANGE_RCPT): the
   * "rcpt" fields change, and the protocol reads "rcpt_changes" ("+address"
   * or "-address", in the order filters made them) to act on it. */
  pst_status (*txn_add_rcpt)(pst_txn* txn, pst_str address);
  pst_status (*txn_del_rcpt)(pst_txn* txn, pst_str address);

  /* --- 1.4: outbound connections --- (any thread)
   * Connects to request->address (numeric) and port; on success the host
   * serves the connection with request->protocol exactly as an accepted
   * one: open(request->user, conn, info), on_data, ... on_close. On
   * failure request->failed runs instead (open never does). The request
   * and everything it points to are copied. A connection holds its
   * generation: close your connections in stop(), or the generation's
   * retirement waits for them. */
  pst_status (*conn_connect)(pst_host_ctx* ctx, const struct pst_connect_v1* request);
  /* Any thread: runs fn(user, PST_OK) on conn's loop thread, or
   * fn(user, PST_ERR_CLOSED) there when the connection closed first;
   * exactly once. For handing work to a session from elsewhere (a pooled
   * outbound connection taken up by another delivery). conn must be alive
   * during this call: call it only while its session exists, under a lock
   * the session's on_close also takes. */
  pst_status (*conn_post)(pst_host_ctx* ctx, pst_conn* conn, pst_timer_fn fn, void* user);
} pst_host_v1;

/* ------------------------------------------------------------------ */
/* Capabilities                                                         */

/* Sans-I/O protocol handler: the host owns the socket and TLS; the session
 * consumes bytes and answers with conn_* calls. All hooks for one session
 * run on its loop thread, never concurrently. A hook returning an error
 * status makes the host close the connection. */
typedef struct pst_protocol_v1 {
  uint32_t struct_size;
  pst_str name; /* what `protocol = "..."` in a listener names */

  /* Creates a session. Return NULL to refuse (the host closes). */
  void* (*open)(void* instance, pst_conn* conn, const pst_conn_info_v1* info);
  pst_status (*on_data)(void* session, const uint8_t* data, size_t len);
  pst_status (*on_tls_ready)(void* session, const pst_conn_info_v1* info);
  /* The idle timeout expired; the host closes after this returns. */
  void (*on_timeout)(void* session);
  /* The server is stopping or this generation's drain deadline passed:
   * say goodbye (421, BYE) and close. The host closes after a grace. */
  void (*on_shutdown)(void* session);
  /* The output buffer drained after conn_write returned PST_ERR_LIMIT. */
  void (*on_writable)(void* session);
  /* The connection is gone; free the session. Always the last hook. */
  void (*on_close)(void* session);
  /* Optional: write a refusal (421 busy) before the host closes a
   * connection that no session will serve. May be NULL. */
  void (*refuse)(void* instance, pst_conn* conn, const pst_conn_info_v1* info,
                 pst_refuse_reason reason);
} pst_protocol_v1;

/* Completes a pending filter hook, exactly once, from any loop thread. */
typedef void (*pst_filter_done_fn)(pst_txn* txn, const pst_verdict_v1* v);

/* Pipeline filter: subscribes to stages, declares its mutations. */
typedef struct pst_filter_v1 {
  uint32_t struct_size;
  pst_str name;
  uint32_t stages;  /* PST_STAGE_BIT mask */
  uint32_t actions; /* PST_FILTER_* mask */
  /* Returns PST_OK with *verdict filled, PST_PENDING (then calls done
   * exactly once), or an error (the host applies the stage's default). */
  pst_status (*on_stage)(void* instance, pst_txn* txn, pst_stage stage,
                         pst_filter_done_fn done, pst_verdict_v1* verdict);
} pst_filter_v1;

/* A named service other plugins (and the control socket) call (1.1).
 * Methods, requests and replies are the service's own contract, in the
 * SDK's record encoding (postern/record.hpp) by convention. */
typedef struct pst_service_v1 {
  uint32_t struct_size;
  pst_str name; /* "store", "auth", "admin.store", ... */
  /* Handles one call; complete it with host->call_reply exactly once, now
   * or later, from any thread. request and method are BORROWED. The host
   * keeps this generation loaded until the reply: a provider that parks
   * calls must answer them within the caller's timeout by itself (reload
   * drain and shutdown wait for every held call). */
  void (*handle)(void* instance, pst_call* call, pst_str method, const uint8_t* request, size_t len);
} pst_service_v1;

typedef enum pst_capability_kind {
  PST_CAP_PROTOCOL = 1,      /* table: pst_protocol_v1 */
  PST_CAP_FILTER = 2,        /* table: pst_filter_v1 */
  PST_CAP_STORE = 3,         /* reserved; stores are services named "store" */
  PST_CAP_AUTHENTICATOR = 4, /* reserved; authenticators are "auth" services */
  PST_CAP_TRANSPORT = 5,     /* reserved */
  PST_CAP_SERVICE = 6        /* table: pst_service_v1 (1.1) */
} pst_capability_kind;

typedef struct pst_capability_v1 {
  uint32_t struct_size;
  uint32_t kind;      /* pst_capability_kind */
  const void* table;  /* starts with uint32_t struct_size */
} pst_capability_v1;

/* ------------------------------------------------------------------ */
/* The plugin descriptor (static data in the plugin)                    */

typedef struct pst_plugin_v1 {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor; /* lowest host minor this plugin needs */
  pst_str name;
  pst_str version;

  /* Reads and validates config (through config_* and config_error) and
   * allocates the instance. No side effects beyond memory: `posternd
   * --check` calls init then fini. NULL = failure, with err filled. */
  void* (*init)(const pst_host_v1* host, pst_host_ctx* ctx, pst_error* err);
  /* Acquires resources and starts timers. Not called by --check. */
  pst_status (*start)(void* instance, pst_error* err);
  /* The generation is retiring: no new sessions; stop periodic work. The
   * host then cancels what is left and waits for it before fini. */
  void (*stop)(void* instance);
  void (*fini)(void* instance);

  const pst_capability_v1* capabilities;
  size_t capability_count;
} pst_plugin_v1;

/* The entry point: returns the descriptor (static, lives as long as the
 * image). host is valid until the image is unloaded. */
typedef const pst_plugin_v1* (*pst_plugin_entry_fn)(const pst_host_v1* host);

/* In a C plugin:  PST_DECLARE_PLUGIN_SYMBOLS
 *                 PST_EXPORT const pst_plugin_v1* pst_plugin_entry(...) {..} */
#define PST_DECLARE_PLUGIN_SYMBOLS \
  PST_EXPORT const char pst_abi_version[] = PST_ABI_VERSION_STRING;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* POSTERN_ABI_H */
