// The IMAP server state machine (RFC 9051 IMAP4rev2, RFC 3501 clients),
// sans-I/O: it consumes bytes, writes responses through Io, and reaches the
// store through Backend (the store service's record methods), which may
// answer at once (tests: a real Store in a temp dir) or later (the plugin).
// One instance per connection, single-threaded; while a command waits for
// the store, later input is kept, in order.
#pragma once

#include "command.hpp"
#include "fetch.hpp"
#include "view.hpp"

#include <postern/mime.hpp>
#include <postern/record.hpp>
#include <postern/result.hpp>
#include <postern/sasl.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace postern::imap {

struct SessionConfig {
  std::string hostname = "localhost";
  bool starttls_available = false;  // the listener has tls = "starttls"
  CommandLimits limits;
  std::chrono::milliseconds login_timeout{60'000};       // before authentication
  std::chrono::milliseconds autologout{30 * 60'000};     // RFC 9051 §5.4: at least 30 minutes
  size_t max_search_bodies = 100000;  // messages whose text one SEARCH may read
};

class Io {
 public:
  virtual ~Io() = default;
  virtual void write(std::string_view bytes) = 0;
  // Whether output is waiting for the client to read it; when_drained
  // calls back once it has (the session stops producing meanwhile).
  virtual bool backlogged() const = 0;
  virtual void when_drained(std::function<void()> fn) = 0;
  virtual void start_tls() = 0;
  virtual void close() = 0;
  virtual void set_timeout(std::chrono::milliseconds) = 0;
  // Stop (true) or restart reading from the client: a busy session does
  // not buffer without bound.
  virtual void pause_input(bool paused) = 0;
  virtual void log(std::string_view event, std::initializer_list<std::pair<std::string_view, std::string_view>>) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // A method of the store contract (sdk/include/postern/store.hpp); done
  // runs once, on the session's thread.
  virtual void call(std::string_view service, std::string_view method, sdk::Record request,
                    std::function<void(sdk::Result<sdk::Record>)> done) = 0;
  // The mailbox's change hint (replacing any earlier watch); 0 = none.
  virtual void watch(uint64_t account, uint64_t mailbox, std::function<void()> changed) = 0;
  // An authenticated session for account begins / ends; false: too many.
  virtual bool session_begins(uint64_t account) = 0;
  virtual void session_ends(uint64_t account) = 0;
  // Reports an authentication attempt (to the guard); then runs once the
  // reply may go out (a failure's reply may be delayed: tarpit).
  virtual void auth_attempt(const std::string& /*user*/, bool /*ok*/, std::function<void()> then) { then(); }
};

class Session {
 public:
  Session(SessionConfig config, Io& io, Backend& backend, std::string peer);
  ~Session();

  void open(bool tls_active);  // sends the greeting
  void tls_ready();
  void feed(std::string_view bytes);
  void timeout();
  void shutdown();
  bool closed() const { return closed_; }

  // Parts of the session the command handlers (other files) use.
  struct Context;

 private:
  enum class State { not_authenticated, authenticated, selected, logout };
  using Tokens = std::vector<Token>;

  void process();
  void dispatch(RawCommand command);
  void run(const std::string& tag, const std::string& name, Tokens args);
  void done(const std::string& tag, const std::string& status, const std::string& text);
  void wait() { busy_ = true; }
  void resume();
  void untagged(const std::string& line) { io_.write("* " + line + "\r\n"); }
  std::string capabilities() const;
  bool secure() const { return secure_; }

  // --- not authenticated ---
  void login(const std::string& tag, const Tokens& args);
  void authenticate(const std::string& tag, const Tokens& args);
  void auth_step(std::string_view line);
  void logged_in(const std::string& tag, uint64_t account, const std::string& address);
  void begin_session(const std::string& tag, uint64_t account, const std::string& address);
  // --- authenticated ---
  void select(const std::string& tag, const Tokens& args, bool read_only);
  void create(const std::string& tag, const Tokens& args);
  void remove(const std::string& tag, const Tokens& args);
  void rename(const std::string& tag, const Tokens& args);
  void subscribe(const std::string& tag, const Tokens& args, bool on);
  void list(const std::string& tag, const Tokens& args, bool lsub);
  void status(const std::string& tag, const Tokens& args);
  void append(const std::string& tag, const Tokens& args);
  void quota(const std::string& tag, const std::string& name, const Tokens& args);
  void enable(const std::string& tag, const Tokens& args);
  void idle(const std::string& tag);
  void idle_line(std::string_view line);
  void idle_refresh();
  void login_failed(const std::string& tag, const std::string& text);
  void check_append_quota();
  // --- selected ---
  void close_mailbox(const std::string& tag, bool expunge);
  void expunge(const std::string& tag, const Tokens& args, bool uid);
  void fetch(const std::string& tag, const Tokens& args, bool uid);
  void store(const std::string& tag, const Tokens& args, bool uid);
  void copy(const std::string& tag, const Tokens& args, bool uid, bool move);
  void search(const std::string& tag, const Tokens& args, bool uid);
  // The header blocks of the selected mailbox's uids (uid -> header), read
  // from the store in batches without the messages themselves; expunged
  // uids are missing. For SEARCH and FETCH of header items.
  using Headers = std::map<uint64_t, std::string>;
  // One message's FETCH items (data and root: its content, when read).
  std::string fetch_response(const std::vector<FetchItem>& items, const MessageRef& m, const std::string* data,
                             const sdk::mime::Part* root, bool* unknown_cte) const;
  void load_headers(std::shared_ptr<const std::vector<uint64_t>> uids,
                    std::function<void(std::shared_ptr<Headers>)> done);

  // Re-reads the selected mailbox and reports changes (EXPUNGE only when
  // allowed), then calls next.
  void refresh(bool expunges_allowed, std::function<void()> next);
  void report_changes(const ViewChanges& changes);
  // The untagged responses due after a command, then the tagged one.
  void finish(const std::string& tag, const std::string& status, const std::string& text, bool expunges_allowed = true);

  SessionConfig config_;
  Io& io_;
  Backend& backend_;
  std::string peer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  CommandReader reader_;

  State state_ = State::not_authenticated;
  bool busy_ = false, processing_ = false, closed_ = false, secure_ = false;
  bool rev2_ = false, condstore_ = false, utf8_ = false;
  uint64_t account_ = 0;
  std::string address_;
  std::unique_ptr<View> view_;
  bool changed_ = false;  // a change hint arrived: refresh at the next chance
  std::vector<uint64_t> saved_;  // SEARCH SAVE result ($), as UIDs

  // AUTHENTICATE / IDLE continuations
  std::string continuation_tag_;
  enum class Continuation { none, auth_plain, auth_scram_first, auth_scram_final, auth_scram_done, idle } continuation_ = Continuation::none;
  std::unique_ptr<sdk::sasl::ScramServer> scram_;
  uint64_t scram_account_ = 0;
  std::string scram_address_;
  int failed_logins_ = 0;
  std::string attempted_user_;  // of the authentication under way, for the guard
  bool input_paused_ = false, drain_pending_ = false;
};

}  // namespace postern::imap
