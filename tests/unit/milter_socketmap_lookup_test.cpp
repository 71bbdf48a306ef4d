// One socketmap key to one answer against scripted sources: the settings a
// reload swaps in, and the operator's enforcement switch (milter/socketmap_lookup.h).
#include "milter/socketmap_lookup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fakes/fake_next_hop.h"
#include "fakes/fake_sources.h"

namespace mtasts::milter {
namespace {

using policy::SocketmapStatus;
using testing::FakeClock;
using testing::FakeDns;
using testing::FakeFetcher;
using testing::FakeMxDns;
using testing::MemoryStore;

constexpr const char* kEnforce = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n";

policy::Deadline soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(2); }

std::shared_ptr<const Config> config_with(std::vector<std::string> excluded_domains,
                                          Action enforce_action = Action::Tempfail) {
  auto config = std::make_shared<Config>();
  config->decision.excluded_domains = std::move(excluded_domains);
  config->decision.enforce_action = enforce_action;
  return config;
}

// example.com publishes an enforce policy; its MX is mx.example.com.
struct World {
  FakeDns dns;
  FakeFetcher fetcher;
  MemoryStore store;
  FakeClock clock;
  FakeMxDns mx_dns;
  policy::Resolver resolver{dns, fetcher, store, clock, policy::ResolverConfig{}};
  Settings settings{config_with({}), nullptr};  // what a reload replaces
  SocketmapLookup lookup{resolver, mx_dns, clock, [this] { return settings; }};

  World() {
    dns.set("mta-sts.example.com", testing::txt_answer({"127.0.0.1"}));
    dns.set("_mta-sts.example.com", testing::txt_answer({"v=STSv1; id=1;"}));
    fetcher.set("example.com", policy::FetchedBody{kEnforce});
    mx_dns.set_mx("example.com", testing::mx_answer({{10, "mx.example.com"}}));
  }
  SocketmapLookupResult ask() { return lookup.lookup("example.com", soon()); }
};

// The routing rules are built once per config: a new config (a reload) must
// still be seen at once, and going back to an earlier one too.
TEST(SocketmapLookup, ExcludedDomainsFollowEveryNewConfig) {
  World world;
  const auto first = world.settings.config;
  EXPECT_EQ(world.ask().answer.why, "enforce");
  world.settings.config = config_with({"example.com"});
  EXPECT_EQ(world.ask().answer, (policy::SocketmapAnswer{SocketmapStatus::NotFound, "", "out-of-scope"}));
  world.settings.config = first;
  EXPECT_EQ(world.ask().answer.why, "enforce");
}

struct SwitchCase {
  std::string name;
  Action config_action;
  std::optional<Action> override_action;  // the override row of example.com
  std::string_view why;
  bool looks_at_next_hop;
};

// enforce_action = "off" (the config's or an override row's) answers
// NOTFOUND, decided by the chooser: the MX and TLSA are not looked up, and
// the answer, which does not depend on them, is remembered.
TEST(SocketmapLookup, TheOperatorsEnforcementSwitch) {
  const std::vector<SwitchCase> cases = {
      {"enforce", Action::Tempfail, std::nullopt, "enforce", true},
      {"config off", Action::Continue, std::nullopt, "enforce-off", false},
      {"override off", Action::Tempfail, Action::Continue, "enforce-off", false},
      {"config off, override back on", Action::Continue, Action::Tempfail, "enforce", true},
      {"tag still enforces", Action::Tag, std::nullopt, "enforce", true},
  };
  for (const auto& c : cases) {
    World world;
    world.settings.config = config_with({}, c.config_action);
    if (c.override_action)
      world.settings.overrides = std::make_shared<const ActionOverrides>(
          ActionOverrides{{"example.com", {c.override_action, {}, {}}}});
    const SocketmapLookupResult result = world.ask();
    EXPECT_EQ(result.answer.why, c.why) << c.name;
    EXPECT_EQ(result.answer.status, c.why == "enforce-off" ? SocketmapStatus::NotFound : SocketmapStatus::Ok)
        << c.name;
    EXPECT_EQ(world.mx_dns.mx_calls() > 0, c.looks_at_next_hop) << c.name;
    EXPECT_GT(result.reuse_until, world.clock.now()) << c.name;
  }
}

}  // namespace
}  // namespace mtasts::milter
