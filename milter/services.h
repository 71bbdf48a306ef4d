// Wires the engine to its real sources (libunbound, libcurl, SQLite) from a
// Config. Construction errors are start-up errors: StartupError carries one
// clear sentence and the sysexits code to exit with.
#pragma once

#include <memory>
#include <stdexcept>

#include "milter/config.h"
#include "milter/system_clock.h"
#include "policy/engine/next_hop_checker.h"
#include "policy/engine/resolver.h"
#include "policy/engine/tlsrpt_buffer.h"
#include "policy/engine/worker_pool.h"
#include "policy/net/curl_fetcher.h"
#include "policy/net/tls_prober.h"
#include "policy/net/unbound_dns.h"
#include "store/database.h"
#include "store/sqlite_store.h"

namespace mtasts::milter {

class StartupError : public std::runtime_error {
 public:
  StartupError(const std::string& what, int exit_code) : std::runtime_error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// What the daemon does when the store cannot be opened for writing: the CLI
// refuses (an import must not vanish), the daemon runs on an in-memory copy
// (the file is only a cache; issue #10).
enum class StoreFallback { Refuse, Memory };

// Opens (creating its folder) and migrates the policy cache database.
std::shared_ptr<store::Database> open_database(const Config& config,
                                               StoreFallback fallback = StoreFallback::Refuse);
// Opens the store only (for `cache` commands that need no network).
std::unique_ptr<store::SqliteStore> open_store(const Config& config);

struct Services {
  SystemClock clock;
  // The one database file: its writer and readers, shared by the policy,
  // TLSRPT and override stores.
  std::shared_ptr<store::Database> database;
  std::unique_ptr<store::SqliteStore> store;
  // Policy discovery and next hops of domains without a known policy: the
  // lookups anyone can cause by mailing arbitrary domains.
  std::unique_ptr<policy::net::UnboundDns> dns;
  // Next hops of domains with a known policy: a libunbound context of its
  // own (own server round-trip estimates), so a burst of slow lookups in
  // `dns` cannot make the forwarder look down for them (issue #10 item 1).
  // Daemon only (null for the CLI, which looks everything up in `dns`).
  std::unique_ptr<policy::net::UnboundDns> known_policy_dns;
  std::unique_ptr<policy::net::CurlFetcher> fetcher;
  std::unique_ptr<policy::net::SmtpTlsProber> prober;  // the next-hop checker's
  // The engine's one worker pool: discoveries, probes and refresh. Outlives
  // the resolver and the daemon's checker, which wait for their jobs.
  std::unique_ptr<policy::WorkerPool> pool;
  std::unique_ptr<policy::Resolver> resolver;  // declared last: destroyed first
};

// Who runs the services: the daemon gets the store's in-memory fallback and
// the second DNS context; a CLI command neither.
enum class ServicesFor { Cli, Daemon };

// Throws StartupError.
std::unique_ptr<Services> make_services(const Config& config, ServicesFor user = ServicesFor::Cli);

// Builds, and throws away, what start-up builds from `config` that can
// refuse it: the DNS resolver (forwarders, stub zones, trust anchors), the
// prober (EHLO name, CA file) and the policy fetcher (CA file), with the
// functions make_services() uses, so reload (SIGHUP, SIGUSR1),
// --print-config and the start accept the same files. Error code "config-check".
policy::Result<bool> check_settings(const Config& config);

// The engine settings the daemon derives from the [probe] and [tlsrpt] sections.
policy::NextHopCheckerConfig checker_config(const Config& config);
policy::WorkerPoolConfig pool_config(const Config& config);
policy::TlsrptBufferConfig tlsrpt_config(const Config& config);

}  // namespace mtasts::milter
