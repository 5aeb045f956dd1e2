// Generation bookkeeping of the plugin manager, on real test plugins.
#include "plugin/plugin_manager.hpp"
#include "runtime/worker_pool.hpp"
#include "test_support.hpp"

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

using namespace postern::core;
using postern::test::echo_config;
using postern::test::TempDir;

namespace {
struct Fixture {
  boost::asio::io_context main;
  WorkerPool workers{1, 16};
  TempDir images;
  PluginManager manager{HostServices{&main, &workers, nullptr, nullptr, "", "", std::chrono::seconds(5)},
                        images.path};

  std::shared_ptr<const PluginSet> load(const Config& c) {
    auto r = manager.prepare(c);
    std::string errors;
    for (auto& e : r.errors) errors += e + "\n";
    REQUIRE_MESSAGE(r.set, errors);
    manager.commit(r.set, std::chrono::seconds(60));
    return r.set;
  }
  std::vector<std::string> states() {
    std::vector<std::string> s;
    for (auto& g : manager.status()) s.push_back(std::to_string(g.generation) + ":" + g.state);
    return s;
  }
  // Runs the main loop until pred holds (bounded).
  template <class Pred>
  bool run_until(Pred pred) {
    for (int i = 0; i < 200 && !pred(); ++i) {
      main.restart();
      main.run_for(std::chrono::milliseconds(10));
    }
    return pred();
  }
};
}  // namespace

TEST_CASE("an unchanged plugin keeps its generation across a reload") {
  Fixture f;
  auto first = f.load(echo_config("echo_v1"));
  auto again = f.load(echo_config("echo_v1"));
  CHECK(first->plugins.at("echo") == again->plugins.at("echo"));
  CHECK(f.states() == std::vector<std::string>{"1:active"});
}

TEST_CASE("a changed plugin gets a new generation - the old one drains - retires and unloads") {
  Fixture f;
  auto v1 = f.load(echo_config("echo_v1", "tick_ms = 5\n"));  // with a periodic timer running
  std::shared_ptr<Generation> session_lease = v1->plugins.at("echo");
  v1.reset();
  CHECK(f.run_until([&] { return !session_lease->host().counters().empty() &&
                                 session_lease->host().counters()[1].second >= 2; }));  // ticks ran

  auto v2 = f.load(echo_config("echo_v2"));
  CHECK(v2->plugins.at("echo")->number() == 2);
  CHECK(v2->protocol("echo")->generation->version() == "1.2.0");
  CHECK(f.states() == std::vector<std::string>{"1:draining", "2:active"});
  CHECK(f.images.count() == 2);  // each generation has its own image

  session_lease.reset();  // the last session of generation 1 ends
  CHECK(f.run_until([&] { return f.states().size() == 1; }));
  CHECK(f.states() == std::vector<std::string>{"2:active"});
  CHECK(f.images.count() == 1);  // generation 1's image copy is gone
}

TEST_CASE("a config change alone also makes a new generation") {
  Fixture f;
  auto a = f.load(echo_config("echo_v1", "greeting = \"a\"\n"));
  auto b = f.load(echo_config("echo_v1", "greeting = \"b\"\n"));
  CHECK(a->plugins.at("echo") != b->plugins.at("echo"));
  a.reset();
  CHECK(f.run_until([&] { return f.states().size() == 1; }));
}

TEST_CASE("a failed prepare leaves the current set untouched") {
  Fixture f;
  auto good = f.load(echo_config("echo_v1"));
  auto r = f.manager.prepare(echo_config("echo_v2", "greeting = \"\"\n"));
  CHECK_FALSE(r.set);
  REQUIRE(!r.errors.empty());
  CHECK(r.errors[0].find("plugins.echo.greeting: must be one non-empty line") != std::string::npos);
  CHECK(f.manager.current() == good);
  CHECK(f.run_until([&] { return f.images.count() == 1; }));
  CHECK(f.states() == std::vector<std::string>{"1:active"});
}

TEST_CASE("a listener whose protocol no plugin provides fails the prepare") {
  Fixture f;
  auto c = echo_config("echo_v1");
  c.listeners[0].protocol = "imap";
  auto r = f.manager.prepare(c);
  CHECK_FALSE(r.set);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] == "listener \"e\" needs a plugin that provides protocol \"imap\"");
  CHECK(f.run_until([&] { return f.manager.status().empty(); }));  // the loaded echo is unloaded again
}

TEST_CASE("shutdown retires every generation and reports when all are unloaded") {
  Fixture f;
  f.load(echo_config("echo_v1", "tick_ms = 1\n"));
  bool done = false;
  f.manager.shutdown([&] { done = true; });
  CHECK(f.run_until([&] { return done; }));
  CHECK(f.manager.status().empty());
  CHECK(f.images.count() == 0);
}

TEST_CASE("a reload that fails after starting a plugin retires it: its timers are cancelled first") {
  Fixture f;
  auto good = f.load(echo_config("echo_v1"));
  // echo starts (with a 1 ms periodic timer), then the second plugin fails.
  auto c = echo_config("echo_v2", "tick_ms = 1\n[plugins.zz]\npath = \"" + postern::test::plugin_path("abi_major2") +
                                      "\"\n");
  auto r = f.manager.prepare(c);
  CHECK_FALSE(r.set);
  CHECK(f.run_until([&] { return f.manager.status().size() == 1; }));
  CHECK(f.states() == std::vector<std::string>{"1:active"});
  CHECK(f.manager.current() == good);
}

TEST_CASE("[pipeline] order must name filters that enabled plugins provide") {
  Fixture f;
  auto c = echo_config("echo_v1", "[pipeline]\norder = [\"spf\"]\n");
  auto r = f.manager.prepare(c);
  CHECK_FALSE(r.set);
  REQUIRE_FALSE(r.errors.empty());
  CHECK(r.errors.back() == "[pipeline] order names filter \"spf\", which no enabled plugin provides");
}

namespace {
struct NoService : BuiltinService {
  void handle(std::string_view, std::string_view, std::function<void(pst_status, std::string)> reply) override {
    reply(PST_OK, "");
  }
};
}  // namespace

TEST_CASE("a plugin may not provide a service under the name of one the core provides") {
  Fixture f;
  NoService builtin;
  f.manager.add_builtin("admin", &builtin);  // as if the core had its own "admin"
  TempDir data;
  std::string key = data.path + "/master.key";
  {
    std::ofstream out(key);
    out << std::string(64, 'a') << "\n";
  }
  std::filesystem::permissions(key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::string so = std::string(TEST_PLUGIN_DIR) + "/../../plugins/store-lmdb.so";
  auto parsed = parse_config("[plugins.store-lmdb]\npath = \"" + so + "\"\nmaster_key_file = \"" + key +
                                 "\"\ndirectory = \"" + data.path + "/store\"\nargon2_memory_kib = 8192\n",
                             "/tmp/unit.toml");
  REQUIRE(parsed.config);
  auto r = f.manager.prepare(*parsed.config);
  CHECK_FALSE(r.set);
  bool named = std::any_of(r.errors.begin(), r.errors.end(), [](const std::string& e) {
    return e == "service \"admin\" of plugin \"store-lmdb\" has the name of a service the core provides";
  });
  CHECK(named);
  CHECK(f.run_until([&] { return f.manager.status().empty(); }));
}
