// DNSSEC-validating DNS through libunbound (RFC 4033-4035), implementing
// policy::Dns. libunbound runs in threaded async mode (ub_ctx_async(ctx, 1));
// one event thread drives ub_process; callers block on their own deadline and
// cancel (ub_cancel) when it passes. secure / insecure / bogus are kept apart.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/sources.h"

namespace mtasts::policy::net {

struct UnboundConfig {
  // Forwarders ("127.0.0.1", "127.0.0.1@5353"); empty with use_resolv_conf
  // false and no stubs means recursion from the root.
  std::vector<std::string> forwarders;
  bool use_resolv_conf = true;   // forward to /etc/resolv.conf's servers
  // Trust anchor files (ub_ctx_add_ta_file); when empty, the root anchor from
  // dns-root-data (/usr/share/dns/root.key) is used. Non-empty REPLACES it.
  std::vector<std::string> trust_anchor_files;
  // Stub zones: "zone=addr[@port]" (ub_ctx_set_stub).
  std::vector<std::string> stub_zones;
  // A name that must validate as secure for the start-up self-test; empty skips it.
  std::string self_test_name = "";
};

class UnboundDns final : public Dns {
 public:
  // Throws std::runtime_error with one clear sentence on bad configuration
  // (start-up only).
  explicit UnboundDns(const UnboundConfig& config);
  ~UnboundDns() override;

  DnsAnswer lookup_txt(const std::string& name, Deadline deadline) override;
  DnsAnswer lookup_addresses(const std::string& name, Deadline deadline) override;

  // Generic lookup by RR type number (used by the two above, and later MX/TLSA).
  DnsAnswer lookup(const std::string& name, int rrtype, Deadline deadline);

  // Resolves self_test_name and reports whether it validated as secure; logs
  // an error when the upstream strips DNSSEC. Returns true when skipped.
  bool dnssec_self_test(Deadline deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy::net
