// Hermetic stand-ins for the next-hop sources (policy/sources.h): scripted
// MX / TLSA / address answers and a scripted STARTTLS prober. Each counts
// its calls so tests can assert what did (not) hit the network; the prober
// records every request and can be slowed down to test deadlines.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "policy/sources.h"

namespace mtasts::testing {

using namespace mtasts::policy;

inline MxAnswer mx_answer(std::vector<MxRecord> records, DnsSecurity security = DnsSecurity::Insecure) {
  return MxAnswer{DnsStatus::Ok, security, std::move(records), false};
}
inline MxAnswer mx_status(DnsStatus status, DnsSecurity security = DnsSecurity::Insecure) {
  return MxAnswer{status, security, {}, false};
}
inline MxAnswer null_mx_answer() { return MxAnswer{DnsStatus::Ok, DnsSecurity::Insecure, {}, true}; }

inline TlsaAnswer tlsa_answer(std::vector<TlsaRecord> records, DnsSecurity security) {
  return TlsaAnswer{DnsStatus::Ok, security, std::move(records)};
}

inline ProbeResult probe_result(ProbeOutcome outcome, std::optional<ResultType> type = std::nullopt,
                                std::string reason = "") {
  ProbeResult r;
  r.outcome = outcome;
  r.result_type = type;
  r.reason = std::move(reason);
  if (outcome == ProbeOutcome::Verified || outcome == ProbeOutcome::DaneVerified) r.tls_version = "TLSv1.3";
  return r;
}

// Unscripted names: MX NXDOMAIN, TLSA NXDOMAIN (insecure), addresses NXDOMAIN.
class FakeMxDns final : public MxDns {
 public:
  void set_mx(const std::string& domain, MxAnswer answer) {
    std::lock_guard lock(mu_);
    mx_[domain] = std::move(answer);
  }
  void set_tlsa(const std::string& host, TlsaAnswer answer) {
    std::lock_guard lock(mu_);
    tlsa_[host] = std::move(answer);
  }
  void set_addresses(const std::string& host, std::vector<std::string> addresses,
                     DnsSecurity security = DnsSecurity::Insecure) {
    std::lock_guard lock(mu_);
    addresses_[host] = DnsAnswer{DnsStatus::Ok, security, std::move(addresses), ""};
  }

  MxAnswer lookup_mx(const std::string& domain, Deadline) override {
    std::lock_guard lock(mu_);
    ++mx_calls_;
    const auto it = mx_.find(domain);
    return it == mx_.end() ? mx_status(DnsStatus::NxDomain) : it->second;
  }
  TlsaAnswer lookup_tlsa(const std::string& host, std::uint16_t port, Deadline) override {
    std::lock_guard lock(mu_);
    ++tlsa_calls_;
    last_tlsa_port_ = port;
    const auto it = tlsa_.find(host);
    return it == tlsa_.end() ? TlsaAnswer{DnsStatus::NxDomain, DnsSecurity::Insecure, {}} : it->second;
  }
  DnsAnswer lookup_host_addresses(const std::string& host, Deadline) override {
    std::lock_guard lock(mu_);
    ++address_calls_;
    const auto it = addresses_.find(host);
    return it == addresses_.end() ? DnsAnswer{DnsStatus::NxDomain, DnsSecurity::Insecure, {}, ""}
                                  : it->second;
  }

  int mx_calls() {
    std::lock_guard lock(mu_);
    return mx_calls_;
  }
  int tlsa_calls() {
    std::lock_guard lock(mu_);
    return tlsa_calls_;
  }
  int address_calls() {
    std::lock_guard lock(mu_);
    return address_calls_;
  }
  std::uint16_t last_tlsa_port() {
    std::lock_guard lock(mu_);
    return last_tlsa_port_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, MxAnswer> mx_;
  std::map<std::string, TlsaAnswer> tlsa_;
  std::map<std::string, DnsAnswer> addresses_;
  int mx_calls_ = 0;
  int tlsa_calls_ = 0;
  int address_calls_ = 0;
  std::uint16_t last_tlsa_port_ = 0;
};

// Results by address; unscripted addresses are unreachable.
class FakeTlsProber final : public TlsProber {
 public:
  void set(const std::string& address, ProbeResult result) {
    std::lock_guard lock(mu_);
    results_[address] = std::move(result);
  }
  void set_delay(std::chrono::milliseconds delay) { delay_ = delay; }

  ProbeResult probe(const ProbeRequest& request) override {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    std::this_thread::sleep_for(delay_.load());
    std::lock_guard lock(mu_);
    const auto it = results_.find(request.address);
    ProbeResult result = it == results_.end()
                             ? probe_result(ProbeOutcome::Unreachable, std::nullopt, "connect-refused")
                             : it->second;
    result.address = request.address;
    return result;
  }

  int calls() {
    std::lock_guard lock(mu_);
    return static_cast<int>(requests_.size());
  }
  int calls(const std::string& address) {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count_if(requests_.begin(), requests_.end(),
                                          [&](const ProbeRequest& r) { return r.address == address; }));
  }
  std::vector<ProbeRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::atomic<std::chrono::milliseconds> delay_{std::chrono::milliseconds(0)};
  std::map<std::string, ProbeResult> results_;
  std::vector<ProbeRequest> requests_;
};

}  // namespace mtasts::testing
