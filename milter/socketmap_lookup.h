// One socketmap key to one answer, from the engine the milter uses: the same
// Resolver (cache, single flight, worker pool) and the known-policy DNS
// context. Blocking (a discovery, MX and TLSA lookups): the server runs it
// on its lookup threads, never on its event loop. Thread-safe.
// RFC 8461 §3.4 (a relay next hop gets the relay's own policy), §5 and
// RFC 7672 through choose_socketmap_answer() (policy/socketmap.h), which
// says which policy state gives which answer and why.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "milter/recipient_route.h"
#include "milter/session.h"
#include "policy/engine/lock_guarded.h"
#include "policy/engine/resolver.h"
#include "policy/socketmap.h"
#include "policy/sources.h"

namespace mtasts::milter {

struct SocketmapLookupResult {
  policy::SocketmapAnswer answer;
  // Unix seconds the answer may be given again without a lookup (0: never):
  // the TXT re-check interval, never past the policy's expiry, and never for
  // TEMP or an answer whose DANE coverage is unknown.
  std::int64_t reuse_until = 0;
  // Until then (unix seconds) the answer may still be given while a new
  // lookup for the key runs: one more re-check interval, never past the
  // policy's expiry (RFC 8461 §5.1: an expired policy is never used).
  std::int64_t stale_until = 0;
  // The answer without TLSRPT attributes, when `answer` has them: for the
  // map names Sendmail uses (socketmap.sendmail_map_names).
  std::optional<policy::SocketmapAnswer> without_attributes = std::nullopt;
};

class SocketmapLookup {
 public:
  // `settings` is read per lookup (a reload replaces it; the routing rules
  // are built again when its config is a new one); `mx_dns` is the cached
  // known-policy DNS context (MX and TLSA of enforce domains).
  SocketmapLookup(policy::Resolver& resolver, policy::MxDns& mx_dns, const policy::Clock& clock,
                  std::function<Settings()> settings);

  // `key` is the request's key as sent. Logs one line per lookup.
  SocketmapLookupResult lookup(const std::string& key, policy::Deadline deadline);

 private:
  policy::NextHopView next_hop_of(const RecipientRoute& route, policy::Deadline deadline);
  std::shared_ptr<const RouteRules> rules_for(const std::shared_ptr<const Config>& config);

  // The routing rules of the last config seen: a lookup shares them, and
  // only a new config (a reload) builds them again.
  struct RulesOfConfig {
    std::shared_ptr<const Config> config;
    std::shared_ptr<const RouteRules> rules;
  };

  policy::Resolver& resolver_;
  policy::MxDns& mx_dns_;
  const policy::Clock& clock_;
  std::function<Settings()> settings_;
  policy::LockGuarded<RulesOfConfig> rules_;
};

}  // namespace mtasts::milter
