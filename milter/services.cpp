#include "milter/services.h"

#include <spdlog/spdlog.h>
#include <sysexits.h>

#include <algorithm>
#include <filesystem>

#include "policy/net/tls_prober.h"

namespace mtasts::milter {

std::shared_ptr<store::Database> open_database(const Config& config, StoreFallback fallback) {
  const std::filesystem::path path(config.store_path);
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  try {
    return store::Database::open(
        config.store_path,
        store::DatabaseOptions{.memory_when_unwritable = fallback == StoreFallback::Memory});
  } catch (const std::exception& e) {
    throw StartupError(e.what(), EX_CANTCREAT);
  }
}

std::unique_ptr<store::SqliteStore> open_store(const Config& config) {
  return std::make_unique<store::SqliteStore>(open_database(config));
}

namespace {

// The parts of start-up that can refuse a configuration (a file that cannot
// be read, a bad forwarder, stub zone or EHLO name), built the one way both
// the start and check_settings() use: a refusal is StartupError(EX_CONFIG).
template <class Part, class... Args>
std::unique_ptr<Part> build_part(std::string_view what, Args&&... args) {
  try {
    return std::make_unique<Part>(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    throw StartupError(std::string(what) + ": " + e.what(), EX_CONFIG);
  }
}

std::unique_ptr<policy::net::UnboundDns> make_dns(const Config& config) {
  return build_part<policy::net::UnboundDns>("cannot set up DNS", config.dns);
}
std::unique_ptr<policy::net::CurlFetcher> make_fetcher(const Config& config) {
  return build_part<policy::net::CurlFetcher>("cannot set up policy fetches", config.https);
}
std::unique_ptr<policy::net::SmtpTlsProber> make_prober(const Config& config) {
  return build_part<policy::net::SmtpTlsProber>(
      "cannot set up MX probes",
      policy::net::SmtpTlsProberConfig{config.probe.ca_file, config.probe.ehlo_name});
}

}  // namespace

std::unique_ptr<Services> make_services(const Config& config, ServicesFor user) {
  const bool daemon = user == ServicesFor::Daemon;
  auto services = std::make_unique<Services>();
  services->database = open_database(config, daemon ? StoreFallback::Memory : StoreFallback::Refuse);
  services->store = std::make_unique<store::SqliteStore>(services->database);
  services->dns = make_dns(config);
  // Logs loudly (and goes on) when validation cannot work: an upstream that
  // strips DNSSEC would otherwise make every answer look "insecure".
  services->dns->dnssec_self_test(std::chrono::steady_clock::now() +
                                  std::chrono::seconds(config.dns_timeout_seconds));
  if (daemon) services->known_policy_dns = make_dns(config);
  services->fetcher = make_fetcher(config);
  services->prober = make_prober(config);
  services->pool = std::make_unique<policy::WorkerPool>(pool_config(config));
  services->resolver =
      std::make_unique<policy::Resolver>(*services->dns, *services->fetcher, *services->store,
                                         services->clock, config.policy, services->pool.get());
  return services;
}

// Reload and --print-config only: the start builds these parts for real,
// through the same functions, once.
policy::Result<bool> check_settings(const Config& config) {
  try {
    make_dns(config);
    make_prober(config);
    make_fetcher(config);
    return true;
  } catch (const StartupError& e) {
    return policy::Error{"config-check", e.what()};
  }
}

policy::NextHopCheckerConfig checker_config(const Config& config) {
  policy::NextHopCheckerConfig out;
  out.probing_enabled = config.probe.enabled;
  out.dane_outside_policy = config.decision.dane != DaneMode::Off;
  out.ehlo_name = config.probe.ehlo_name;
  out.probe_step_timeout = std::chrono::milliseconds(config.probe.step_timeout_ms);
  out.probe_success_ttl = config.probe.success_ttl;
  out.probe_failure_ttl = config.probe.failure_ttl;
  out.max_parallel_probes = config.probe.max_parallel;
  return out;
}

// The queue holds every job the single-flight caps let in (discoveries,
// probes, a refresh batch), so those caps, not the queue, refuse a flood.
policy::WorkerPoolConfig pool_config(const Config& config) {
  policy::WorkerPoolConfig out;
  out.threads = config.engine.threads;
  out.max_queued = config.policy.max_jobs + config.probe.max_parallel + 16;
  return out;
}

policy::TlsrptBufferConfig tlsrpt_config(const Config& config) {
  policy::TlsrptBufferConfig out;
  out.sending_mta_ip = config.tlsrpt.sending_mta_ip;
  out.flush_interval = std::chrono::seconds(config.tlsrpt.flush_interval);
  out.flush_at_aggregates = config.tlsrpt.flush_at_aggregates;
  // Room above the early-flush mark for what arrives while it is written.
  out.max_pending = std::max(config.tlsrpt.max_pending, config.tlsrpt.flush_at_aggregates);
  return out;
}

}  // namespace mtasts::milter
