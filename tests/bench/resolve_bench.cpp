// Resolution benchmark (prints figures; never a pass/fail test).
//
//   resolve_bench warm [--domains N] [--runs R]
//     Warm lookups per second from the memory cache with 1 and 16 threads,
//     against a baseline measured in the same run: the same lookups served
//     straight from SQLite (what every lookup would cost without the cache).
//   resolve_bench cold -c CONFIG --domain-file FILE [--runs R] [--callers 1,16,100]
//     Wall time to resolve every domain in FILE with an empty cache from the
//     configured (test-bed) DNS and HTTPS servers, per number of concurrent
//     callers. Each run starts from a fresh cache database.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <sys/resource.h>

#include "milter/config.h"
#include "milter/services.h"
#include "policy/engine/resolver.h"
#include "store/sqlite_store.h"

namespace {

using namespace mtasts;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A DNS that never answers: warm lookups must not reach it.
class UnreachableDns final : public policy::Dns {
 public:
  policy::DnsAnswer lookup_txt(const std::string&, policy::Deadline) override { return fail(); }
  policy::DnsAnswer lookup_addresses(const std::string&, policy::Deadline) override { return fail(); }
  std::atomic<int> calls{0};

 private:
  policy::DnsAnswer fail() {
    ++calls;
    return {policy::DnsStatus::ServFail, policy::DnsSecurity::Insecure, {}, ""};
  }
};

class NoFetcher final : public policy::PolicyFetcher {
 public:
  policy::Result<policy::FetchedBody, policy::FetchError> fetch(const std::string&,
                                                                std::span<const std::string>) override {
    return policy::FetchError{policy::ResultType::StsPolicyFetchError, "connect", "", true};
  }
};

class FixedClock final : public policy::Clock {
 public:
  std::int64_t now() const override { return 1'800'000'000; }
};

std::vector<std::string> seed_store(store::SqliteStore& store, int count) {
  const std::string raw = "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 604800\n";
  std::vector<std::string> domains;
  for (int i = 0; i < count; ++i) {
    policy::StoredPolicy p;
    p.domain = "d" + std::to_string(i) + ".example";
    p.txt_id = "1";
    p.raw = raw;
    p.policy = {policy::Mode::Enforce, 604800, {"mx.example.net"}};
    p.fetched_at = p.last_checked = p.last_used = 1'800'000'000;
    p.expires_at = p.fetched_at + 604800;
    (void)store.save(p);
    domains.push_back(p.domain);
  }
  return domains;
}

// Runs `threads` workers over `domains` `rounds` times; returns lookups/s.
template <class Lookup>
double lookups_per_second(int threads, int rounds, const std::vector<std::string>& domains, Lookup lookup) {
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r)
        for (std::size_t i = static_cast<std::size_t>(t); i < domains.size();
             i += static_cast<std::size_t>(threads))
          lookup(domains[i]);
    });
  for (auto& w : workers) w.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(domains.size()) * rounds / seconds;
}

int run_warm(int domain_count, int runs) {
  const auto dir = std::filesystem::temp_directory_path() / ("mtasts-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  store::SqliteStore store((dir / "cache.db").string());
  const auto domains = seed_store(store, domain_count);
  UnreachableDns dns;
  NoFetcher fetcher;
  FixedClock clock;
  policy::ResolverConfig config;
  config.txt_recheck_interval = 86400;
  policy::Resolver resolver(dns, fetcher, store, clock, config);
  const auto far = Clock::now() + std::chrono::hours(1);
  for (const auto& d : domains) resolver.resolve(d, far);  // load into memory
  dns.calls = 0;

  std::cout << "warm lookups, " << domain_count << " cached domains, median of " << runs << " runs\n";
  for (int threads : {1, 16}) {
    std::vector<double> cached, sqlite;
    for (int r = 0; r < runs; ++r) {
      cached.push_back(
          lookups_per_second(threads, 20, domains, [&](const std::string& d) { resolver.resolve(d, far); }));
      sqlite.push_back(
          lookups_per_second(threads, 1, domains, [&](const std::string& d) { (void)store.load(d); }));
    }
    std::printf("  threads=%-3d memory-cache=%.0f/s  sqlite-baseline=%.0f/s  ratio=%.1fx\n", threads,
                median(cached), median(sqlite), median(cached) / median(sqlite));
  }
  std::printf("  dns lookups during warm runs: %d (must be 0)\n", dns.calls.load());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("  peak RSS with %d cached domains in memory: %.1f MiB\n", domain_count,
              static_cast<double>(usage.ru_maxrss) / 1024.0);
  std::filesystem::remove_all(dir);
  return 0;
}

std::vector<std::string> read_domains(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::string> domains;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) domains.push_back(line);
  return domains;
}

double cold_run_seconds(milter::Config config, const std::vector<std::string>& domains, int callers,
                        int& with_policy) {
  std::filesystem::remove(config.store_path);
  std::filesystem::remove(config.store_path + "-wal");
  std::filesystem::remove(config.store_path + "-shm");
  auto services = milter::make_services(config);
  std::atomic<std::size_t> next{0};
  std::atomic<int> found{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int c = 0; c < callers; ++c)
    workers.emplace_back([&] {
      for (std::size_t i = next++; i < domains.size(); i = next++) {
        const auto r = services->resolver->resolve(domains[i], Clock::now() + std::chrono::minutes(5));
        if (r.policy) ++found;
      }
    });
  for (auto& w : workers) w.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  with_policy = found.load();
  return seconds;
}

int run_cold(const std::string& config_path, const std::string& domain_file, int runs,
             const std::vector<int>& caller_counts) {
  auto config = milter::load_config(config_path);
  if (!config) {
    std::cerr << config.error().detail << "\n";
    return 78;
  }
  const auto domains = read_domains(domain_file);
  std::cout << "cold resolution of " << domains.size() << " distinct domains, median of " << runs
            << " runs\n";
  double baseline = 0;
  for (int callers : caller_counts) {
    std::vector<double> times;
    int with_policy = 0;
    int fewest_with_policy = static_cast<int>(domains.size());
    for (int r = 0; r < runs; ++r) {
      times.push_back(cold_run_seconds(*config, domains, callers, with_policy));
      fewest_with_policy = std::min(fewest_with_policy, with_policy);
    }
    with_policy = fewest_with_policy;
    const double m = median(times);
    if (baseline == 0) baseline = m;
    std::printf("  callers=%-4d wall=%.2fs  domains/s=%.0f  speedup-vs-first=%.1fx  with-policy=%d/%zu\n",
                callers, m, static_cast<double>(domains.size()) / m, baseline / m, with_policy,
                domains.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mta-sts-milter resolution benchmark"};
  app.require_subcommand(1);
  int domains = 10000, runs = 5;
  std::string config_path, domain_file;
  std::vector<int> callers{1, 16, 100};
  auto* warm = app.add_subcommand("warm", "warm lookups per second");
  warm->add_option("--domains", domains);
  warm->add_option("--runs", runs);
  auto* cold = app.add_subcommand("cold", "cold resolution against the test bed");
  cold->add_option("-c,--config", config_path)->required();
  cold->add_option("--domain-file", domain_file)->required();
  cold->add_option("--runs", runs);
  cold->add_option("--callers", callers)->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (warm->parsed()) return run_warm(domains, runs);
  return run_cold(config_path, domain_file, runs, callers);
}
