// DNSSEC-validating DNS through libunbound (RFC 4033-4035), implementing
// policy::Dns (TXT, addresses) and policy::MxDns (MX: RFC 5321 §5.1 and the
// null MX of RFC 7505 §3; TLSA: RFC 6698 §2.1 at _PORT._tcp.HOST, RFC 7672
// §3). Thread-safe: any number of threads may call any lookup. libunbound
// runs in threaded async mode (ub_ctx_async(ctx, 1)); one event thread drives
// ub_process; callers block on their own deadline and cancel (ub_cancel) when
// it passes. secure / insecure / bogus are kept apart.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policy/sources.h"

namespace mtasts::policy::net {

struct UnboundConfig {
  // Forwarders ("127.0.0.1", "127.0.0.1@5353"); empty with use_resolv_conf
  // false and no stubs means recursion from the root.
  std::vector<std::string> forwarders;
  bool use_resolv_conf = true;  // forward to /etc/resolv.conf's servers
  // Trust anchor files (ub_ctx_add_ta_file); when empty, the root anchor from
  // dns-root-data (/usr/share/dns/root.key) is used. Non-empty REPLACES it.
  std::vector<std::string> trust_anchor_files;
  // Stub zones: "zone=addr[@port]" (ub_ctx_set_stub).
  std::vector<std::string> stub_zones;
  // A name that must validate as secure for the start-up self-test; empty skips it.
  std::string self_test_name = "";
  // libunbound's infra-cache-max-rtt: the most a server's remembered
  // round-trip time may grow to. Its own default (120 s) lets a burst of
  // slow names make the forwarder look down for every lookup.
  long max_server_rtt_ms = 1000;
};

class UnboundDns final : public Dns, public MxDns {
 public:
  // Throws std::runtime_error with one clear sentence on bad configuration
  // (start-up only).
  explicit UnboundDns(const UnboundConfig& config);
  ~UnboundDns() override;

  DnsAnswer lookup_txt(const std::string& name, Deadline deadline) override;
  DnsAnswer lookup_addresses(const std::string& name, Deadline deadline) override;

  // MX of `domain` (A-label, no trailing dot). Each rdata is a 16-bit
  // preference and an uncompressed wire-format name (RFC 1035 §3.3.9); the
  // name must end exactly at the end of the rdata and consist of letter,
  // digit and hyphen labels (RFC 5321 §2.3.5). Hosts come back lower-case
  // without trailing dot, records sorted by preference then host. A malformed
  // record is skipped and logged; when every record is malformed the status is
  // ServFail. A single record "0 ." is the null MX: null_mx true, no records;
  // "." in any other position is kept as host "". Bogus -> ServFail + Bogus.
  MxAnswer lookup_mx(const std::string& domain, Deadline deadline) override;
  // TLSA of _PORT._tcp.HOST: usage, selector, matching type (one octet each)
  // and at least one octet of association data; shorter rdata is skipped and
  // logged, ServFail when none is left. Field values are not judged here:
  // which records are usable (RFC 7672 §2.2) is the prober's business.
  // Bogus -> ServFail + Bogus.
  TlsaAnswer lookup_tlsa(const std::string& host, std::uint16_t port, Deadline deadline) override;
  // Same as lookup_addresses.
  DnsAnswer lookup_host_addresses(const std::string& host, Deadline deadline) override;

  // Generic lookup by RR type number (used by all of the above); types other
  // than A, AAAA and TXT come back as raw wire rdata.
  DnsAnswer lookup(const std::string& name, int rrtype, Deadline deadline);

  // Resolves self_test_name and reports whether it validated as secure; logs
  // an error when the upstream strips DNSSEC. Returns true when skipped.
  bool dnssec_self_test(Deadline deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::policy::net
