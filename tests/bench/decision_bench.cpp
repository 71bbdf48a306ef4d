// Per-recipient decision latency benchmark (prints figures; never a pass/fail
// test, except that a broken bed makes it exit 1). A decision is
// milter::Session::on_rcpt(address, "smtp", <recipient domain>, now): routing,
// the next-hop check (policy, MX match, STARTTLS probe) and the action, with
// the checker wired as milter/daemon.cpp run_daemon() wires it (Services from
// make_services, MxDnsCache, SmtpTlsProber, NextHopChecker, TlsrptBuffer).
// Two pass-through counters sit in front of the real MX DNS and the real
// prober: they see only cache misses, so they count the network work.
//
//   decision_bench warm -c CONFIG --domain-file FILE [--decisions N] [--runs R] [--peer-log LOG]
//     Warms every domain of FILE (enforce, MX with valid STARTTLS) once, then
//     times N decisions per run round-robin, R runs: p50/p90/p99/max in us
//     and decisions/s (medians over the runs), against a baseline timed in the
//     same runs: the policy lookup alone from the Resolver's memory cache.
//     Fails unless every timed decision was action=continue tls=verified from
//     the caches and no DNS lookup, probe or peer connection (LOG: the SMTP
//     peer's event log) happened during the timed runs.
//   decision_bench cold -c CONFIG --domain-file FILE --baseline-file FILE
//                  [--concurrent-file FILE] [--callers 16] [--peer-log LOG]
//     From empty stores and caches, one decision at a time per domain of FILE
//     (TXT lookup, HTTPS fetch, MX lookup, probe) in ms, interleaved with the
//     baseline: cold policy resolution alone for the domains of BASELINE.
//     Then, with fresh caches again, the domains of CONCURRENT decided by
//     CALLERS threads with one Session each. Fails unless every decision found
//     its enforce policy over HTTPS and verified TLS (action=continue), and
//     the peer saw exactly one connection per probe.
//
// Run through tests/bench/run_decision_bench.sh (builds the bed, as root).
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "milter/config.h"
#include "milter/services.h"
#include "milter/session.h"
#include "policy/engine/metrics.h"
#include "policy/engine/mx_dns_cache.h"
#include "policy/engine/next_hop_checker.h"
#include "policy/engine/tlsrpt_buffer.h"
#include "policy/net/tls_prober.h"
#include "store/tlsrpt_store.h"

namespace {

using namespace mtasts;
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------ statistics

struct Spread {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;  // nanoseconds
};

// Nearest-rank percentiles.
Spread spread_of(std::vector<double> ns) {
  if (ns.empty()) return {};
  std::sort(ns.begin(), ns.end());
  const auto at = [&](double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(ns.size())));
    return ns[std::clamp<std::size_t>(rank, 1, ns.size()) - 1];
  };
  return {at(0.50), at(0.90), at(0.99), ns.back()};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

// Field-wise medians of several runs' spreads.
Spread median_spread(const std::vector<Spread>& runs) {
  std::vector<double> p50, p90, p99, max;
  for (const auto& s : runs) {
    p50.push_back(s.p50);
    p90.push_back(s.p90);
    p99.push_back(s.p99);
    max.push_back(s.max);
  }
  return {median(p50), median(p90), median(p99), median(max)};
}

// "p50=3.1 p90=3.4 p99=6.0 max=81.2 us"; `scale` ns per unit.
std::string format_spread(const Spread& s, double scale, const char* unit) {
  char text[160];
  std::snprintf(text, sizeof text, "p50=%.1f p90=%.1f p99=%.1f max=%.1f %s", s.p50 / scale, s.p90 / scale,
                s.p99 / scale, s.max / scale, unit);
  return text;
}

double elapsed_ns(Clock::time_point from, Clock::time_point to) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

// ------------------------------------------------------------ network counters

// Pass-through in front of the real MX DNS (behind MxDnsCache): every call is
// a cache miss that goes to libunbound.
class CountingMxDns final : public policy::MxDns {
 public:
  explicit CountingMxDns(policy::MxDns& upstream) : upstream_(upstream) {}
  policy::MxAnswer lookup_mx(const std::string& domain, policy::Deadline deadline) override {
    return timed([&] { return upstream_.lookup_mx(domain, deadline); });
  }
  policy::TlsaAnswer lookup_tlsa(const std::string& host, std::uint16_t port,
                                 policy::Deadline deadline) override {
    return timed([&] { return upstream_.lookup_tlsa(host, port, deadline); });
  }
  policy::DnsAnswer lookup_host_addresses(const std::string& host, policy::Deadline deadline) override {
    return timed([&] { return upstream_.lookup_host_addresses(host, deadline); });
  }
  std::atomic<long> lookups{0};
  std::atomic<double> busy_ns{0};

 private:
  template <class Lookup>
  std::invoke_result_t<Lookup> timed(Lookup lookup) {
    const auto start = Clock::now();
    auto answer = lookup();
    ++lookups;
    busy_ns += elapsed_ns(start, Clock::now());
    return answer;
  }
  policy::MxDns& upstream_;
};

// Pass-through in front of the real prober (behind the checker's probe cache).
class CountingProber final : public policy::TlsProber {
 public:
  explicit CountingProber(policy::TlsProber& real) : real_(real) {}
  policy::ProbeResult probe(const policy::ProbeRequest& request) override {
    const auto start = Clock::now();
    auto result = real_.probe(request);
    ++probes;
    busy_ns += elapsed_ns(start, Clock::now());
    return result;
  }
  std::atomic<long> probes{0};
  std::atomic<double> busy_ns{0};

 private:
  policy::TlsProber& real_;
};

// Connections the SMTP peer (tests/integration/lib/smtp_peer.py) logged:
// lines "<addr> connect". -1 without a log.
long peer_connections(const std::string& log) {
  if (log.empty()) return -1;
  std::ifstream in(log);
  long count = 0;
  for (std::string line; std::getline(in, line);) {
    const auto space = line.find(' ');
    if (space != std::string::npos && line.compare(space + 1, std::string::npos, "connect") == 0) ++count;
  }
  return count;
}

// ------------------------------------------------------------ the daemon's wiring

// What run_daemon() builds before libmilter takes over, on an empty store at
// `store_path` (removed first, with its journal files).
class DecisionStack {
 public:
  DecisionStack(milter::Config config, const std::string& store_path) : config_(std::move(config)) {
    config_.store_path = store_path;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(store_path + suffix);
    services_ =
        milter::make_services(config_, milter::ServicesFor::Daemon);  // as the daemon: two DNS contexts
    tlsrpt_store_ = std::make_unique<store::SqliteTlsrptStore>(services_->database);
    tlsrpt_ = std::make_unique<policy::TlsrptBuffer>(tlsrpt_store_.get(), milter::tlsrpt_config(config_));
    services_->resolver->set_tlsrpt_sink(tlsrpt_.get());
    prober_ = std::make_unique<CountingProber>(*services_->prober);
    // As the daemon: next hops of domains with a known policy in a DNS
    // context of their own.
    const auto ttl = static_cast<std::uint32_t>(std::min<std::int64_t>(config_.probe.success_ttl, 300));
    mx_dns_ = std::make_unique<CountingMxDns>(*services_->dns);
    known_mx_dns_ = std::make_unique<CountingMxDns>(*services_->known_policy_dns);
    next_hop_dns_ = std::make_unique<policy::MxDnsCache>(*mx_dns_, services_->clock, ttl);
    known_next_hop_dns_ = std::make_unique<policy::MxDnsCache>(*known_mx_dns_, services_->clock, ttl);
    checker_ = std::make_unique<policy::NextHopChecker>(*services_->resolver, *next_hop_dns_, *prober_,
                                                        services_->clock, milter::checker_config(config_),
                                                        nullptr, known_next_hop_dns_.get());
    checker_->set_tlsrpt_sink(tlsrpt_.get());
  }

  // The daemon's shutdown order: probes, then the resolver, then the buffer.
  ~DecisionStack() {
    checker_->wait_idle();
    checker_.reset();
    services_->resolver->set_tlsrpt_sink(nullptr);
    services_->resolver->flush();
    services_->resolver->wait_idle();
    tlsrpt_->flush();
  }
  DecisionStack(const DecisionStack&) = delete;
  DecisionStack& operator=(const DecisionStack&) = delete;

  const milter::Config& config() const { return config_; }
  policy::NextHopChecker& checker() { return *checker_; }
  policy::Resolver& resolver() { return *services_->resolver; }
  // Next-hop DNS lookups that reached libunbound (both contexts).
  long next_hop_lookups() const { return mx_dns_->lookups + known_mx_dns_->lookups; }
  double next_hop_dns_ns() const { return mx_dns_->busy_ns + known_mx_dns_->busy_ns; }
  const CountingProber& prober() const { return *prober_; }

 private:
  milter::Config config_;
  std::unique_ptr<milter::Services> services_;
  std::unique_ptr<store::SqliteTlsrptStore> tlsrpt_store_;
  std::unique_ptr<policy::TlsrptBuffer> tlsrpt_;
  std::unique_ptr<CountingProber> prober_;
  std::unique_ptr<CountingMxDns> mx_dns_;
  std::unique_ptr<CountingMxDns> known_mx_dns_;
  std::unique_ptr<policy::MxDnsCache> next_hop_dns_;
  std::unique_ptr<policy::MxDnsCache> known_next_hop_dns_;
  std::unique_ptr<policy::NextHopChecker> checker_;
};

// ------------------------------------------------------------ checked decisions

// Which policy source every decision must report.
enum class Expect { Fetched, Cache };

// Counts the verdicts a Session's check function returns: each must be an
// enforce policy from the expected source, a verified MX and action continue.
class Tally {
 public:
  Tally(Expect expect, const milter::DecisionConfig& decision) : expect_(expect), decision_(decision) {}

  void note(const policy::CheckResult& r) {
    ++checked_;
    const auto& v = r.verdict;
    const auto& res = r.facts.resolution;
    const bool source_ok = expect_ == Expect::Fetched
                               ? res.source == policy::PolicySource::Fetched
                               : res.source == policy::PolicySource::Cache && !res.fresh_txt_check;
    if (source_ok && v.outcome == policy::Outcome::Pass && v.mode == policy::Mode::Enforce &&
        v.tls == policy::TlsStatus::Verified &&
        milter::choose_action(r, decision_, false) == milter::Action::Continue)
      return;
    ++bad_;
    if (first_bad_.empty()) first_bad_ = describe(r);
  }
  long checked() const { return checked_; }
  long bad() const { return bad_; }
  const std::string& first_bad() const { return first_bad_; }

 private:
  static std::string describe(const policy::CheckResult& r) {
    const auto& v = r.verdict;
    std::ostringstream out;
    out << "domain=" << r.policy_domain << " outcome=" << policy::to_string(v.outcome)
        << " mode=" << (v.mode ? policy::to_string(*v.mode) : "-") << " tls=" << policy::to_string(v.tls)
        << " reason=" << (v.reason.empty() ? "-" : v.reason)
        << " source=" << policy::to_string(r.facts.resolution.source)
        << " fresh_txt_check=" << r.facts.resolution.fresh_txt_check << " mx=" << (v.mx.empty() ? "-" : v.mx);
    return out.str();
  }

  Expect expect_;
  milter::DecisionConfig decision_;
  long checked_ = 0, bad_ = 0;
  std::string first_bad_;
};

// One recipient of a decision, as Postfix sends it: mailer smtp, next hop =
// the recipient domain.
struct Recipient {
  std::string domain;
  std::string address;
};

std::vector<Recipient> recipients_of(const std::vector<std::string>& domains) {
  std::vector<Recipient> out;
  for (const auto& d : domains) out.push_back({d, "<user@" + d + ">"});
  return out;
}

// A Session deciding through the stack's checker, its verdicts noted in
// `tally` (one Session per thread, like one per milter connection).
milter::Session make_session(DecisionStack& stack, Tally& tally) {
  auto check = [&stack, &tally](const policy::NextHop& hop, policy::Deadline deadline) {
    auto result = stack.checker().check(hop, deadline);
    tally.note(result);
    return result;
  };
  return milter::Session(check, std::make_shared<const milter::Config>(stack.config()),
                         std::make_shared<const milter::ActionOverrides>());
}

// One timed decision (a new message first, so the per-message memo of the
// Session cannot answer). Returns ns; `refused` counts RCPT refusals.
double timed_decision(milter::Session& session, const Recipient& r, long& refused) {
  session.begin_message(Clock::now());
  const auto start = Clock::now();
  const milter::RcptReply reply = session.on_rcpt(r.address, "smtp", r.domain, start);
  const auto end = Clock::now();
  if (!reply.accept) ++refused;
  return elapsed_ns(start, end);
}

policy::Deadline deadline_from(Clock::time_point now, const milter::Config& config) {
  return now + std::chrono::milliseconds(config.decision.rcpt_deadline_ms);
}

// ------------------------------------------------------------ warm

struct WarmRun {
  Spread decision, policy_only;
  double decisions_per_s = 0, lookups_per_s = 0;
};

// The policy lookup alone, from the Resolver's memory cache; `missing`
// counts lookups that came back without an enforce policy.
double timed_policy_lookup(policy::Resolver& resolver, const milter::Config& config,
                           const std::string& domain, long& missing) {
  const auto start = Clock::now();
  const policy::Resolution r = resolver.resolve(domain, deadline_from(start, config));
  const auto end = Clock::now();
  if (!r.policy || r.policy->policy.mode != policy::Mode::Enforce || r.source != policy::PolicySource::Cache)
    ++missing;
  return elapsed_ns(start, end);
}

WarmRun warm_run(DecisionStack& stack, milter::Session& session, const std::vector<Recipient>& recipients,
                 long decisions, long& refused, long& missing) {
  WarmRun run;
  std::vector<double> samples(static_cast<std::size_t>(decisions));
  auto start = Clock::now();
  for (std::size_t i = 0; i < samples.size(); ++i)
    samples[i] = timed_decision(session, recipients[i % recipients.size()], refused);
  run.decisions_per_s = static_cast<double>(decisions) / (elapsed_ns(start, Clock::now()) / 1e9);
  run.decision = spread_of(samples);

  start = Clock::now();
  for (std::size_t i = 0; i < samples.size(); ++i)
    samples[i] = timed_policy_lookup(stack.resolver(), stack.config(),
                                     recipients[i % recipients.size()].domain, missing);
  run.lookups_per_s = static_cast<double>(decisions) / (elapsed_ns(start, Clock::now()) / 1e9);
  run.policy_only = spread_of(samples);
  return run;
}

// One decision per domain with the given expectation; false (with a message)
// when any was not as expected.
bool warm_up_pass(DecisionStack& stack, const std::vector<Recipient>& recipients, Expect expect,
                  const char* what) {
  Tally tally(expect, stack.config().decision);
  auto session = make_session(stack, tally);
  long refused = 0;
  for (const auto& r : recipients) (void)timed_decision(session, r, refused);
  if (tally.bad() == 0 && refused == 0 && tally.checked() == static_cast<long>(recipients.size()))
    return true;
  std::cerr << "decision_bench: error: warm-up " << what << ": " << tally.bad() << " of " << tally.checked()
            << " decisions not as expected, " << refused << " refused; first: " << tally.first_bad() << "\n";
  return false;
}

void print_warm_summary(const std::vector<WarmRun>& runs) {
  std::vector<Spread> decision, policy_only;
  std::vector<double> rate, lookup_rate;
  for (const auto& r : runs) {
    decision.push_back(r.decision);
    policy_only.push_back(r.policy_only);
    rate.push_back(r.decisions_per_s);
    lookup_rate.push_back(r.lookups_per_s);
  }
  const Spread d = median_spread(decision), p = median_spread(policy_only);
  std::printf("  decision     %s  decisions/s=%.0f\n", format_spread(d, 1e3, "us").c_str(), median(rate));
  std::printf("  policy-only  %s  lookups/s=%.0f\n", format_spread(p, 1e3, "us").c_str(),
              median(lookup_rate));
  std::printf(
      "  ratio decision/policy-only: p50 %.1fx  p99 %.1fx  (+%.1f us at p50 for the next-hop check)\n",
      d.p50 / p.p50, d.p99 / p.p99, (d.p50 - p.p50) / 1e3);
}

// CPU seconds (user + system) of this process so far: the decider's own
// cost per decision, whatever the other processes on the machine do.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// `callers` threads, one Session and Tally each (one per milter
// connection), deciding warm recipients at once: aggregate rate, the
// spread of every decision, CPU per decision. False when any decision was
// not warm.
bool warm_concurrent(DecisionStack& stack, const std::vector<Recipient>& recipients, long decisions,
                     int callers, const char* label) {
  const long per_caller = std::max(1L, decisions / callers);
  std::vector<std::vector<double>> samples(static_cast<std::size_t>(callers));
  std::vector<long> bad(static_cast<std::size_t>(callers), 0), refused(static_cast<std::size_t>(callers), 0);
  const double cpu_before = process_cpu_seconds();
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      Tally tally(Expect::Cache, stack.config().decision);
      auto session = make_session(stack, tally);
      auto& mine = samples[static_cast<std::size_t>(c)];
      mine.reserve(static_cast<std::size_t>(per_caller));
      for (long i = 0; i < per_caller; ++i)
        mine.push_back(timed_decision(session,
                                      recipients[static_cast<std::size_t>(i + c) % recipients.size()],
                                      refused[static_cast<std::size_t>(c)]));
      bad[static_cast<std::size_t>(c)] = tally.bad();
    });
  }
  for (auto& t : threads) t.join();
  const double wall = elapsed_ns(start, Clock::now()) / 1e9;
  const double cpu = process_cpu_seconds() - cpu_before;
  std::vector<double> all;
  for (auto& v : samples) all.insert(all.end(), v.begin(), v.end());
  const long total = static_cast<long>(all.size());
  long total_bad = 0;
  for (std::size_t c = 0; c < bad.size(); ++c) total_bad += bad[c] + refused[c];
  std::printf("  %d callers%s: decision %s  decisions/s=%.0f  cpu/decision=%.2f us\n", callers, label,
              format_spread(spread_of(all), 1e3, "us").c_str(), static_cast<double>(total) / wall,
              cpu / static_cast<double>(total) * 1e6);
  if (total_bad == 0) return true;
  std::cerr << "decision_bench: error: " << total_bad << " concurrent warm decisions were not warm\n";
  return false;
}

int run_warm(const milter::Config& config, const std::vector<std::string>& domains, long decisions, int runs,
             int callers, const std::string& peer_log) {
  const auto dir = std::filesystem::path(config.store_path).parent_path();
  DecisionStack stack(config, (dir / "decision-warm.db").string());
  const auto recipients = recipients_of(domains);
  if (!warm_up_pass(stack, recipients, Expect::Fetched, "first pass (fetch and probe)") ||
      !warm_up_pass(stack, recipients, Expect::Cache, "second pass (caches)"))
    return 1;
  std::printf(
      "warm: %zu enforce domains, MX verified over STARTTLS; %ld decisions per run, median of %d runs\n",
      domains.size(), decisions, runs);
  std::printf("  warm-up: %ld probes, %ld next-hop DNS lookups; a second pass came from the caches\n",
              stack.prober().probes.load(), stack.next_hop_lookups());

  const long lookups_before = stack.next_hop_lookups(), probes_before = stack.prober().probes;
  const long peer_before = peer_connections(peer_log);
  Tally tally(Expect::Cache, stack.config().decision);
  auto session = make_session(stack, tally);
  long refused = 0, missing = 0;
  std::vector<WarmRun> results;
  const double cpu_before = process_cpu_seconds();
  for (int r = 0; r < runs; ++r) {
    results.push_back(warm_run(stack, session, recipients, decisions, refused, missing));
    const auto& w = results.back();
    std::printf("  run %d  decision %s %.0f/s   policy-only %s %.0f/s\n", r + 1,
                format_spread(w.decision, 1e3, "us").c_str(), w.decisions_per_s,
                format_spread(w.policy_only, 1e3, "us").c_str(), w.lookups_per_s);
  }
  print_warm_summary(results);
  // Each run also timed as many policy-only lookups: their CPU is in the figure.
  std::printf("  1 caller: cpu per decision + policy-only lookup=%.2f us\n",
              (process_cpu_seconds() - cpu_before) / static_cast<double>(decisions * runs) * 1e6);
  // The same runs with the metrics on (README "Metrics": counting must cost
  // no lock on this path), alternating off/on so that noise hits both.
  std::vector<WarmRun> off, on;
  for (int r = 0; r < runs; ++r) {
    for (const bool metrics_on : {false, true}) {
      policy::metrics::set_enabled(metrics_on);
      (metrics_on ? on : off).push_back(warm_run(stack, session, recipients, decisions, refused, missing));
    }
  }
  policy::metrics::set_enabled(false);
  const auto p50 = [](const std::vector<WarmRun>& rs) {
    std::vector<double> v;
    for (const auto& r : rs) v.push_back(r.decision.p50);
    return median(v);
  };
  std::printf("  metrics off/on (alternating runs): decision p50 %.2f / %.2f us, ratio on/off %.3f\n",
              p50(off) / 1e3, p50(on) / 1e3, p50(on) / p50(off));
  // The concurrent run, metrics off then on: a counter every caller updates
  // is where a shared cache line would show.
  bool concurrent_warm = true;
  if (callers > 1) {
    for (const bool metrics_on : {false, true}) {
      policy::metrics::set_enabled(metrics_on);
      concurrent_warm = warm_concurrent(stack, recipients, decisions, callers,
                                        metrics_on ? " (metrics on)" : " (metrics off)") &&
                        concurrent_warm;
    }
    policy::metrics::set_enabled(false);
  }

  const long lookups = stack.next_hop_lookups() - lookups_before,
             probes = stack.prober().probes - probes_before;
  const long peer = peer_log.empty() ? 0 : peer_connections(peer_log) - peer_before;
  std::printf(
      "  checked: %ld decisions, %ld not action=continue tls=verified source=cache, %ld refused; "
      "%ld policy lookups without a cached enforce policy; during the timed runs: %ld DNS lookups, "
      "%ld probes, %ld peer connections%s\n",
      tally.checked(), tally.bad(), refused, missing, lookups, probes, peer,
      peer_log.empty() ? " (no peer log)" : "");
  if (concurrent_warm && tally.bad() + refused + missing + lookups + probes + peer == 0 &&
      tally.checked() == decisions * runs * 3)
    return 0;
  std::cerr << "decision_bench: error: the warm runs were not all warm"
            << (tally.first_bad().empty() ? "" : "; first bad decision: " + tally.first_bad()) << "\n";
  return 1;
}

// ------------------------------------------------------------ cold

struct ColdSamples {
  std::vector<double> decision, policy_only;  // ns
  long refused = 0, missing = 0;
};

// A cold policy resolution must fetch an enforce policy over HTTPS.
bool fetched_enforce(const policy::Resolution& r) {
  return r.source == policy::PolicySource::Fetched && r.policy &&
         r.policy->policy.mode == policy::Mode::Enforce;
}

// Decisions and baseline lookups alternate, one at a time, so that machine
// noise hits both alike.
ColdSamples cold_sequential(DecisionStack& decider, Tally& tally, DecisionStack& baseline,
                            const std::vector<Recipient>& decide, const std::vector<std::string>& resolve) {
  ColdSamples out;
  auto session = make_session(decider, tally);
  for (std::size_t i = 0; i < std::max(decide.size(), resolve.size()); ++i) {
    if (i < decide.size()) out.decision.push_back(timed_decision(session, decide[i], out.refused));
    if (i >= resolve.size()) continue;
    const auto start = Clock::now();
    const auto r = baseline.resolver().resolve(resolve[i], deadline_from(start, baseline.config()));
    out.policy_only.push_back(elapsed_ns(start, Clock::now()));
    if (!fetched_enforce(r)) ++out.missing;
  }
  return out;
}

void print_cold(const ColdSamples& s, const DecisionStack& decider) {
  const Spread d = spread_of(s.decision), p = spread_of(s.policy_only);
  const double n = static_cast<double>(s.decision.size());
  const double dns_ms = decider.next_hop_dns_ns() / 1e6 / n, probe_ms = decider.prober().busy_ns / 1e6 / n;
  std::printf("  decision     %s  mean=%.2f ms   (TXT, policy fetch, MX/TLSA/A lookups, STARTTLS probe)\n",
              format_spread(d, 1e6, "ms").c_str(), mean(s.decision) / 1e6);
  std::printf("  policy-only  %s  mean=%.2f ms   (TXT, policy fetch; %zu other domains)\n",
              format_spread(p, 1e6, "ms").c_str(), mean(s.policy_only) / 1e6, s.policy_only.size());
  std::printf("  ratio decision/policy-only: p50 %.1fx  p99 %.1fx  mean %.1fx (+%.2f ms per decision)\n",
              d.p50 / p.p50, d.p99 / p.p99, mean(s.decision) / mean(s.policy_only),
              (mean(s.decision) - mean(s.policy_only)) / 1e6);
  std::printf(
      "  where a cold decision's time goes (mean ms): next-hop DNS %.2f (%.1f lookups), probe %.2f, "
      "policy and the rest %.2f\n",
      dns_ms, static_cast<double>(decider.next_hop_lookups()) / n, probe_ms,
      mean(s.decision) / 1e6 - dns_ms - probe_ms);
}

// `callers` threads, one Session each, share one stack (as the milter's
// connections do) and take the domains in turn.
int cold_concurrent(const milter::Config& config, const std::string& store,
                    const std::vector<Recipient>& recipients, int callers, long& probes) {
  DecisionStack stack(config, store);
  std::vector<std::vector<double>> samples(static_cast<std::size_t>(callers));
  std::vector<std::unique_ptr<Tally>> tallies;
  std::vector<long> refused(static_cast<std::size_t>(callers), 0);
  for (int c = 0; c < callers; ++c)
    tallies.push_back(std::make_unique<Tally>(Expect::Fetched, config.decision));
  std::atomic<std::size_t> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < samples.size(); ++c)
    threads.emplace_back([&, c] {
      auto session = make_session(stack, *tallies[c]);
      for (std::size_t i = next++; i < recipients.size(); i = next++)
        samples[c].push_back(timed_decision(session, recipients[i], refused[c]));
    });
  for (auto& t : threads) t.join();
  const double wall_s = elapsed_ns(start, Clock::now()) / 1e9;
  std::vector<double> all;
  long bad = 0, bad_refused = 0;
  std::string first_bad;
  for (std::size_t c = 0; c < samples.size(); ++c) {
    all.insert(all.end(), samples[c].begin(), samples[c].end());
    bad += tallies[c]->bad();
    bad_refused += refused[c];
    if (first_bad.empty()) first_bad = tallies[c]->first_bad();
  }
  std::printf(
      "  concurrent   %s  (%zu other domains, %d callers, one Session each; wall %.2f s, %.0f decisions/s)\n",
      format_spread(spread_of(all), 1e6, "ms").c_str(), all.size(), callers, wall_s,
      static_cast<double>(all.size()) / wall_s);
  probes = stack.prober().probes;
  if (bad + bad_refused == 0 && all.size() == recipients.size()) return 0;
  std::cerr << "decision_bench: error: concurrent cold decisions: " << bad << " not as expected, "
            << bad_refused << " refused; first: " << first_bad << "\n";
  return 1;
}

int run_cold(const milter::Config& config, const std::vector<std::string>& domains,
             const std::vector<std::string>& baseline_domains,
             const std::vector<std::string>& concurrent_domains, int callers, const std::string& peer_log) {
  const auto dir = std::filesystem::path(config.store_path).parent_path();
  const long peer_before = peer_connections(peer_log);
  long probes = 0;
  std::printf(
      "cold: %zu decisions one at a time, each for a never-seen enforce domain with its own MX host; "
      "empty store and caches\n",
      domains.size());
  {
    DecisionStack decider(config, (dir / "decision-cold.db").string());
    DecisionStack baseline(config, (dir / "decision-cold-baseline.db").string());
    Tally tally(Expect::Fetched, config.decision);
    const ColdSamples s = cold_sequential(decider, tally, baseline, recipients_of(domains), baseline_domains);
    print_cold(s, decider);
    probes = decider.prober().probes;
    std::printf(
        "  checked: %ld decisions, %ld not action=continue tls=verified source=fetched mode=enforce, "
        "%ld refused; %ld of %zu baseline lookups without a fetched enforce policy\n",
        tally.checked(), tally.bad(), s.refused, s.missing, baseline_domains.size());
    if (tally.bad() + s.refused + s.missing != 0 || tally.checked() != static_cast<long>(domains.size())) {
      std::cerr << "decision_bench: error: cold decisions not as expected; first: " << tally.first_bad()
                << "\n";
      return 1;
    }
  }
  if (!concurrent_domains.empty()) {
    long concurrent_probes = 0;
    if (cold_concurrent(config, (dir / "decision-cold-concurrent.db").string(),
                        recipients_of(concurrent_domains), callers, concurrent_probes) != 0)
      return 1;
    probes += concurrent_probes;
  }
  if (peer_log.empty()) return 0;
  const long peer = peer_connections(peer_log) - peer_before;
  std::printf("  probes=%ld peer-connections=%ld\n", probes, peer);
  if (peer == probes) return 0;
  std::cerr << "decision_bench: error: " << probes << " probes but " << peer
            << " connections at the SMTP peer\n";
  return 1;
}

std::vector<std::string> read_domains(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::string> domains;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) domains.push_back(line);
  if (domains.empty()) throw std::runtime_error("no domains in '" + file + "'");
  return domains;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mta-sts-milter per-recipient decision latency benchmark"};
  app.require_subcommand(1);
  std::string config_path, domain_file, baseline_file, concurrent_file, peer_log;
  long decisions = 100000;
  int runs = 5, callers = 16;
  auto* warm = app.add_subcommand("warm", "warm decisions against the policy-only memory lookup");
  auto* cold = app.add_subcommand("cold", "cold decisions against cold policy resolution");
  for (auto* sub : {warm, cold}) {
    sub->add_option("-c,--config", config_path, "the bed's milter config (TOML)")->required();
    sub->add_option("--domain-file", domain_file, "domains to decide, one a line")->required();
    sub->add_option("--peer-log", peer_log, "event log of the SMTP peer (smtp_peer.py) to count connections");
  }
  warm->add_option("--decisions", decisions, "timed decisions per run")->check(CLI::PositiveNumber);
  warm->add_option("--runs", runs, "timed runs (medians)")->check(CLI::PositiveNumber);
  warm->add_option("--callers", callers, "threads of the concurrent warm run (1: none)")
      ->check(CLI::PositiveNumber);
  cold->add_option("--baseline-file", baseline_file, "other domains for the policy-only baseline")
      ->required();
  cold->add_option("--concurrent-file", concurrent_file, "other domains for the concurrent run");
  cold->add_option("--callers", callers, "threads of the concurrent run")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  auto config = milter::load_config(config_path);
  if (!config) {
    std::cerr << "decision_bench: error: " << config.error().detail << "\n";
    return 78;
  }
  try {
    if (warm->parsed())
      return run_warm(*config, read_domains(domain_file), decisions, runs, callers, peer_log);
    return run_cold(*config, read_domains(domain_file), read_domains(baseline_file),
                    concurrent_file.empty() ? std::vector<std::string>{} : read_domains(concurrent_file),
                    callers, peer_log);
  } catch (const std::exception& e) {
    std::cerr << "decision_bench: error: " << e.what() << "\n";
    return 1;
  }
}
