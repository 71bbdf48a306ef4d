// DNSSEC-validating lookups through libunbound (RFC 4033 §5: an answer is
// secure, insecure or bogus, and the three are never merged into one "ok").
//
// Threading: libunbound runs in threaded async mode (ub_ctx_async(ctx, 1)),
// so its resolver works in a thread of its own and delivers finished queries
// on the pipe behind ub_fd(). One event thread of ours poll()s that pipe plus
// an eventfd (to stop) and calls ub_process(), which runs our callback. The
// caller of lookup() waits on a per-query condition variable until its own
// deadline, then ub_cancel()s. ub_cancel() and the delivery of an answer are
// serialised inside libunbound (its cfglock): a successful cancel means the
// callback will never run, a failed one (UB_NOID) means it runs or has run.
// The callback's argument is therefore owned by exactly one side: the
// callback frees it, or the canceller does after a successful cancel.
#include "policy/net/unbound_dns.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unbound.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>

#include <spdlog/spdlog.h>

#include "policy/logfmt.h"
#include "policy/net/dns_wire.h"

namespace mtasts::policy::net {
namespace {

constexpr int kTypeA = 1;
constexpr int kTypeMx = 15;
constexpr int kTypeTxt = 16;
constexpr int kTypeAaaa = 28;
constexpr int kTypeDnskey = 48;
constexpr int kTypeTlsa = 52;
constexpr int kClassIn = 1;
constexpr int kRcodeNoError = 0;
constexpr int kRcodeNxDomain = 3;
constexpr const char* kRootKeyFile = "/usr/share/dns/root.key";

struct CtxDeleter {
  void operator()(ub_ctx* ctx) const { ub_ctx_delete(ctx); }
};
using CtxPtr = std::unique_ptr<ub_ctx, CtxDeleter>;

struct ResultDeleter {
  void operator()(ub_result* result) const { ub_resolve_free(result); }
};
using ResultPtr = std::unique_ptr<ub_result, ResultDeleter>;

// Closes a file descriptor (the eventfd) exactly once.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// What the callback hands to the waiting caller.
struct QueryState {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int err = 0;
  ResultPtr result;
};

// The callback's argument: keeps the state alive however late the callback
// runs. Owned by libunbound between submit and callback/cancel.
struct CallbackHolder {
  std::shared_ptr<QueryState> state;
};

void on_result(void* arg, int err, ub_result* raw_result) noexcept {
  const std::unique_ptr<CallbackHolder> holder{static_cast<CallbackHolder*>(arg)};
  ResultPtr result{raw_result};
  try {
    const std::lock_guard lock{holder->state->mutex};
    holder->state->err = err;
    holder->state->result = std::move(result);
    holder->state->done = true;
  } catch (...) {
    // A mutex that cannot be locked leaves the caller to time out.
    return;
  }
  holder->state->done_cv.notify_all();
}

void check(int rc, std::string_view what) {
  if (rc != 0) {
    throw std::runtime_error("DNS resolver configuration failed: " + std::string{what} + ": " +
                             ub_strerror(rc) + ".");
  }
}

void set_option(ub_ctx* ctx, const char* option, const char* value) {
  check(ub_ctx_set_option(ctx, option, value), std::string{"option "} + option + " " + value);
}

void require_readable(const std::string& path) {
  if (!std::ifstream{path}.is_open()) {
    throw std::runtime_error("DNS trust anchor file " + path + " cannot be read.");
  }
}

// "zone=addr[@port]" -> ub_ctx_set_stub(zone, addr@port).
void add_stub(ub_ctx* ctx, const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    throw std::runtime_error("DNS stub zone \"" + spec + "\" is not of the form zone=addr[@port].");
  }
  const std::string zone = spec.substr(0, eq);
  const std::string addr = spec.substr(eq + 1);
  check(ub_ctx_set_stub(ctx, zone.c_str(), addr.c_str(), 0), "stub zone " + spec);
  // Unbound blocks some special-use names (test., invalid., onion., ...) with
  // built-in local zones; a configured stub means the operator wants it
  // resolved. An explicit empty transparent zone displaces the built-in one
  // ("nodefault" is not honoured through ub_ctx_set_option in 1.17).
  set_option(ctx, "local-zone:", (zone + " transparent").c_str());
}

void configure_upstreams(ub_ctx* ctx, const UnboundConfig& config) {
  for (const auto& stub : config.stub_zones) add_stub(ctx, stub);
  for (const auto& fwd : config.forwarders) {
    check(ub_ctx_set_fwd(ctx, fwd.c_str()), "forwarder " + fwd);
  }
  if (config.use_resolv_conf && config.forwarders.empty() && config.stub_zones.empty()) {
    check(ub_ctx_resolvconf(ctx, nullptr), "reading /etc/resolv.conf");
  }
}

void configure_trust_anchors(ub_ctx* ctx, const UnboundConfig& config) {
  // Own anchors replace the root: with the root anchor and no reachable
  // root zone, every answer would be bogus.
  const std::vector<std::string> files =
      config.trust_anchor_files.empty() ? std::vector<std::string>{kRootKeyFile} : config.trust_anchor_files;
  for (const auto& file : files) {
    require_readable(file);
    check(ub_ctx_add_ta_file(ctx, file.c_str()), "trust anchor file " + file);
  }
}

// Finalises the context now (libunbound reads anchors and builds its modules
// on the first resolve) so that a bad anchor file fails start-up, not the
// first mail. "localhost" is answered by a built-in local zone: no traffic.
void finalize(ub_ctx* ctx) {
  ub_result* raw = nullptr;
  const int rc = ub_resolve(ctx, "localhost", kTypeA, kClassIn, &raw);
  const ResultPtr result{raw};
  if (rc != 0) {
    throw std::runtime_error(std::string{"DNS resolver failed to start (check trust anchors "
                                         "and options): "} +
                             ub_strerror(rc) + ".");
  }
}

CtxPtr make_context(const UnboundConfig& config) {
  CtxPtr ctx{ub_ctx_create()};
  if (!ctx) throw std::runtime_error("DNS resolver context could not be created.");
  check(ub_ctx_async(ctx.get(), 1), "threaded mode");
  // Test beds and local resolvers live on 127.0.0.0/8.
  set_option(ctx.get(), "do-not-query-localhost:", "no");
  // Level 2 makes libunbound fill why_bogus with the failing record and server.
  set_option(ctx.get(), "val-log-level:", "2");
  // A burst of lookups for names whose servers answer late (anyone who can
  // make the MTA mail arbitrary domains can send one) times out against the
  // forwarder, and each timeout doubles its remembered round-trip time up to
  // 120 s by default: libunbound then treats the forwarder as down, and
  // every lookup -- MX of known enforce domains included -- timed out for
  // minutes after the burst (tests/integration/dns_flood.sh). Capped (1 s
  // by default), the forwarder stays in use; a lookup that needs longer is
  // retried, and one the forwarder takes seconds to answer may fail
  // (SERVFAIL: temporary) until the forwarder has it cached.
  set_option(ctx.get(), "infra-cache-max-rtt:", std::to_string(config.max_server_rtt_ms).c_str());
  set_option(ctx.get(), "infra-keep-probing:", "yes");
  // Even capped, the burst leaves the forwarder marked down, and libunbound
  // then answered SERVFAIL at once, with no query sent, for every new name
  // for as long as the server's entry lived (infra-host-ttl, 900 s by
  // default; measured: still so 120 s after the burst). At 10 s the
  // entry, and the verdict, is forgotten soon after the burst ends; what is
  // lost is the forwarder's round-trip estimate, relearnt with one query.
  set_option(ctx.get(), "infra-host-ttl:", "10");
  configure_upstreams(ctx.get(), config);
  configure_trust_anchors(ctx.get(), config);
  finalize(ctx.get());
  return ctx;
}

// Other types are returned as raw wire rdata for the caller to parse.
std::optional<std::string> rdata_text(std::string_view rdata, int rrtype) {
  switch (rrtype) {
    case kTypeTxt:
      return join_character_strings(rdata);
    case kTypeA:
      return address_text(rdata, AF_INET, 4);
    case kTypeAaaa:
      return address_text(rdata, AF_INET6, 16);
    default:
      return std::string{rdata};
  }
}

std::string type_name(int rrtype) {
  switch (rrtype) {
    case kTypeA:
      return "A";
    case kTypeMx:
      return "MX";
    case kTypeTxt:
      return "TXT";
    case kTypeAaaa:
      return "AAAA";
    case kTypeDnskey:
      return "DNSKEY";
    case kTypeTlsa:
      return "TLSA";
    default:
      return "TYPE" + std::to_string(rrtype);
  }
}

void log_malformed(std::string_view name, int rrtype, std::size_t index, std::size_t length) {
  spdlog::warn("dns event=malformed-rdata name={} type={} index={} length={}", logfmt_value(name),
               type_name(rrtype), index, length);
}

std::vector<std::string> records_of(const ub_result& result, int rrtype) {
  std::vector<std::string> records;
  for (int i = 0; result.data != nullptr && result.data[i] != nullptr; ++i) {
    const std::size_t length = result.len[i] > 0 ? static_cast<std::size_t>(result.len[i]) : 0;
    const std::string_view rdata{result.data[i], length};
    if (auto text = rdata_text(rdata, rrtype)) {
      records.push_back(std::move(*text));
    } else {
      log_malformed(result.qname != nullptr ? result.qname : "", rrtype, static_cast<std::size_t>(i),
                    rdata.size());
    }
  }
  return records;
}

// ------------------------------------------------------------ MX and TLSA
// Parses each raw rdata of `raw` with `parse` (policy/net/dns_wire.h),
// logging and skipping the malformed ones. A positive answer left with
// nothing usable is a failure of the upstream, not an empty RRset.
template <typename Answer, typename Parse>
Answer parse_answer(const std::string& name, int rrtype, const DnsAnswer& raw, Parse parse) {
  Answer answer;
  answer.status = raw.status;
  answer.security = raw.security;
  answer.ttl = raw.ttl;
  for (std::size_t i = 0; i < raw.records.size(); ++i) {
    if (auto record = parse(raw.records[i])) {
      answer.records.push_back(std::move(*record));
    } else {
      log_malformed(name, rrtype, i, raw.records[i].size());
    }
  }
  if (answer.status == DnsStatus::Ok && answer.records.empty()) answer.status = DnsStatus::ServFail;
  return answer;
}

// RFC 7505 §3: exactly one MX, preference 0, exchange "." means "no mail".
MxAnswer to_mx_answer(const std::string& domain, const DnsAnswer& raw) {
  MxAnswer answer = parse_answer<MxAnswer>(domain, kTypeMx, raw, parse_mx);
  std::sort(answer.records.begin(), answer.records.end(), [](const auto& a, const auto& b) {
    return std::tie(a.preference, a.host) < std::tie(b.preference, b.host);
  });
  if (answer.records.size() == 1 && answer.records[0].preference == 0 && answer.records[0].host.empty()) {
    answer.null_mx = true;
    answer.records.clear();
  }
  return answer;
}

DnsAnswer to_answer(const ub_result& result, int rrtype) {
  DnsAnswer answer;
  if (result.bogus != 0) {
    answer.status = DnsStatus::ServFail;
    answer.security = DnsSecurity::Bogus;
    answer.why_bogus = result.why_bogus != nullptr ? result.why_bogus : "validation failed";
    return answer;
  }
  answer.security = result.secure != 0 ? DnsSecurity::Secure : DnsSecurity::Insecure;
  answer.ttl = result.ttl > 0 ? static_cast<std::uint32_t>(result.ttl) : 0;
  if (result.rcode == kRcodeNxDomain) {
    answer.status = DnsStatus::NxDomain;
  } else if (result.havedata != 0) {
    answer.status = DnsStatus::Ok;
    answer.records = records_of(result, rrtype);
  } else if (result.rcode == kRcodeNoError) {
    answer.status = DnsStatus::NoData;
  } else {
    answer.status = DnsStatus::ServFail;
  }
  return answer;
}

int security_rank(DnsSecurity security) {
  switch (security) {
    case DnsSecurity::Secure:
      return 0;
    case DnsSecurity::Insecure:
      return 1;
    case DnsSecurity::Bogus:
      return 2;
  }
  return 2;
}

int failure_rank(DnsStatus status) {
  switch (status) {
    case DnsStatus::Ok:
      return 0;
    case DnsStatus::NoData:
      return 1;
    case DnsStatus::NxDomain:
      return 2;
    case DnsStatus::ServFail:
      return 3;
    case DnsStatus::Timeout:
      return 4;
  }
  return 4;
}

// A then AAAA: Ok when either has data; otherwise the more serious failure.
// Security is the weaker of the answers that arrived (a timed-out half has
// no DNSSEC view to contribute).
DnsAnswer merge(DnsAnswer v4, DnsAnswer v6) {
  DnsAnswer merged;
  merged.records = std::move(v4.records);
  merged.records.insert(merged.records.end(), std::make_move_iterator(v6.records.begin()),
                        std::make_move_iterator(v6.records.end()));
  if (v4.status == DnsStatus::Ok || v6.status == DnsStatus::Ok) {
    merged.status = DnsStatus::Ok;
  } else {
    merged.status = failure_rank(v4.status) >= failure_rank(v6.status) ? v4.status : v6.status;
  }
  const bool v4_counts = v4.status != DnsStatus::Timeout;
  const bool v6_counts = v6.status != DnsStatus::Timeout;
  if (v4_counts && v6_counts) {
    merged.security = security_rank(v4.security) >= security_rank(v6.security) ? v4.security : v6.security;
  } else {
    merged.security = v4_counts ? v4.security : v6.security;
  }
  merged.why_bogus = !v4.why_bogus.empty() ? std::move(v4.why_bogus) : std::move(v6.why_bogus);
  merged.ttl = std::min(v4.ttl, v6.ttl);
  return merged;
}

}  // namespace

struct UnboundDns::Impl {
  // A submitted query, waited for by its submitter only.
  struct Pending {
    std::shared_ptr<QueryState> state;
    CallbackHolder* holder = nullptr;  // owned by libunbound until callback/cancel
    int id = 0;
    int submit_error = 0;
  };

  explicit Impl(const UnboundConfig& config)
      : config_(config), ctx_(make_context(config)), wake_(::eventfd(0, EFD_CLOEXEC)) {
    if (wake_.get() < 0) {
      throw std::runtime_error(std::string{"DNS resolver wake-up descriptor failed: "} +
                               std::strerror(errno) + ".");
    }
    events_ = std::thread{[this] { event_loop(); }};
  }

  ~Impl() {
    const std::uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) < 0) {
      spdlog::error("dns event=stop-failed error={}", logfmt_value(std::strerror(errno)));
    }
    if (events_.joinable()) events_.join();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void event_loop() noexcept {
    std::array<pollfd, 2> fds{{{ub_fd(ctx_.get()), POLLIN, 0}, {wake_.get(), POLLIN, 0}}};
    while (true) {
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        try {
          spdlog::error("dns event=poll-failed error={}", logfmt_value(std::strerror(errno)));
        } catch (...) {
        }
        return;
      }
      if ((fds[1].revents & POLLIN) != 0) return;
      if ((fds[0].revents & POLLIN) == 0 && fds[0].revents != 0) {
        try {
          spdlog::error("dns event=event-loop-stopped revents={}", fds[0].revents);
        } catch (...) {
        }
        return;  // the result pipe is gone: lookups will time out
      }
      if ((fds[0].revents & POLLIN) != 0) {
        const int rc = ub_process(ctx_.get());
        if (rc != 0) {
          try {
            spdlog::error("dns event=process-failed error={}", logfmt_value(ub_strerror(rc)));
          } catch (...) {
          }
        }
      }
    }
  }

  Pending submit(const std::string& name, int rrtype) {
    Pending pending;
    pending.state = std::make_shared<QueryState>();
    // Released before the call: the callback may run (and free it) before
    // ub_resolve_async returns.
    pending.holder = std::make_unique<CallbackHolder>(CallbackHolder{pending.state}).release();
    pending.submit_error =
        ub_resolve_async(ctx_.get(), name.c_str(), rrtype, kClassIn, pending.holder, on_result, &pending.id);
    if (pending.submit_error != 0) {
      // No callback will come: take the holder back.
      const std::unique_ptr<CallbackHolder> reclaim{pending.holder};
      pending.holder = nullptr;
    }
    return pending;
  }

  // The answer, or nullopt when the deadline passed first (query cancelled).
  std::optional<DnsAnswer> wait(Pending& pending, int rrtype, Deadline deadline) {
    if (pending.submit_error != 0) return failure(pending.submit_error);
    std::unique_lock lock{pending.state->mutex};
    if (!pending.state->done_cv.wait_until(lock, deadline, [&] { return pending.state->done; })) {
      lock.unlock();
      if (ub_cancel(ctx_.get(), pending.id) == 0) {
        // Cancelled before delivery: the callback will never run.
        const std::unique_ptr<CallbackHolder> reclaim{pending.holder};
        return std::nullopt;
      }
      // Delivery won the race: the callback runs (or ran) and owns the holder.
      lock.lock();
      if (!pending.state->done) return std::nullopt;
    }
    if (pending.state->err != 0 || !pending.state->result) return failure(pending.state->err);
    return to_answer(*pending.state->result, rrtype);
  }

  static DnsAnswer failure(int err) {
    spdlog::warn("dns event=resolve-error error={}", logfmt_value(ub_strerror(err)));
    return DnsAnswer{};  // ServFail, Insecure
  }

  DnsAnswer lookup(const std::string& name, int rrtype, Deadline deadline) {
    if (std::chrono::steady_clock::now() >= deadline) return timed_out();
    Pending pending = submit(name, rrtype);
    auto answer = wait(pending, rrtype, deadline);
    return answer ? std::move(*answer) : timed_out();
  }

  DnsAnswer lookup_addresses(const std::string& name, Deadline deadline) {
    if (std::chrono::steady_clock::now() >= deadline) return timed_out();
    Pending v4 = submit(name, kTypeA);
    Pending v6 = submit(name, kTypeAaaa);
    auto a = wait(v4, kTypeA, deadline);
    auto aaaa = wait(v6, kTypeAaaa, deadline);
    return merge(a ? std::move(*a) : timed_out(), aaaa ? std::move(*aaaa) : timed_out());
  }

  static DnsAnswer timed_out() {
    DnsAnswer answer;
    answer.status = DnsStatus::Timeout;
    return answer;
  }

  const UnboundConfig config_;
  CtxPtr ctx_;
  Fd wake_;
  std::thread events_;
};

namespace {

void log_answer(const std::string& name, std::string_view type, const DnsAnswer& answer,
                std::chrono::steady_clock::time_point started) {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (answer.security == DnsSecurity::Bogus) {
    spdlog::warn("dns event=bogus name={} type={} why_bogus={} elapsed_ms={}", logfmt_value(name), type,
                 logfmt_value(answer.why_bogus), elapsed.count());
    return;
  }
  spdlog::debug("dns event=lookup name={} type={} status={} security={} records={} elapsed_ms={}",
                logfmt_value(name), type, to_string(answer.status), to_string(answer.security),
                answer.records.size(), elapsed.count());
}

std::string_view self_test_hint(const DnsAnswer& answer) {
  switch (answer.status) {
    case DnsStatus::Timeout:
      return "no answer in time: is the upstream resolver reachable?";
    case DnsStatus::NxDomain:
      return "the self-test name does not exist: pick a name in a signed zone";
    default:
      break;
  }
  if (answer.security == DnsSecurity::Bogus) {
    return "answers fail validation: the upstream strips DNSSEC records or the trust anchor "
           "is wrong";
  }
  if (answer.security == DnsSecurity::Insecure) {
    return "answer is not signed: the name is in an unsigned zone or no trust anchor covers it";
  }
  return "the upstream resolver failed";
}

}  // namespace

UnboundDns::UnboundDns(const UnboundConfig& config) : impl_(std::make_unique<Impl>(config)) {
  // libunbound starts its resolver thread (and libevent's sockets) on the
  // first asynchronous lookup. Started here, it cannot fail later at the
  // descriptor limit, where libevent calls exit(1); "localhost" is answered
  // by a built-in local zone, so nothing leaves the machine.
  lookup("localhost", kTypeA, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  const std::string anchors = config.trust_anchor_files.empty()
                                  ? std::string{kRootKeyFile}
                                  : std::to_string(config.trust_anchor_files.size());
  spdlog::debug("dns event=started forwarders={} stubs={} trust_anchors={} resolv_conf={}",
                config.forwarders.size(), config.stub_zones.size(), anchors, config.use_resolv_conf);
}

UnboundDns::~UnboundDns() = default;

DnsAnswer UnboundDns::lookup(const std::string& name, int rrtype, Deadline deadline) {
  const auto started = std::chrono::steady_clock::now();
  DnsAnswer answer = impl_->lookup(name, rrtype, deadline);
  log_answer(name, type_name(rrtype), answer, started);
  return answer;
}

DnsAnswer UnboundDns::lookup_txt(const std::string& name, Deadline deadline) {
  return lookup(name, kTypeTxt, deadline);
}

DnsAnswer UnboundDns::lookup_addresses(const std::string& name, Deadline deadline) {
  const auto started = std::chrono::steady_clock::now();
  DnsAnswer answer = impl_->lookup_addresses(name, deadline);
  log_answer(name, "A+AAAA", answer, started);
  return answer;
}

MxAnswer UnboundDns::lookup_mx(const std::string& domain, Deadline deadline) {
  return to_mx_answer(domain, lookup(domain, kTypeMx, deadline));
}

// RFC 6698 §3 / RFC 7672 §3: the TLSA owner is _PORT._tcp.HOST.
TlsaAnswer UnboundDns::lookup_tlsa(const std::string& host, std::uint16_t port, Deadline deadline) {
  const std::string name = "_" + std::to_string(port) + "._tcp." + host;
  return parse_answer<TlsaAnswer>(name, kTypeTlsa, lookup(name, kTypeTlsa, deadline), parse_tlsa);
}

DnsAnswer UnboundDns::lookup_host_addresses(const std::string& host, Deadline deadline) {
  return lookup_addresses(host, deadline);
}

// A secure answer for the test name (its DNSKEY when it is a zone apex, else
// its A record; a signed NODATA proof counts too) shows that the upstream
// passes DNSSEC records through. Anything else means validation cannot work.
bool UnboundDns::dnssec_self_test(Deadline deadline) {
  const std::string& name = impl_->config_.self_test_name;
  if (name.empty()) return true;
  DnsAnswer answer = lookup(name, kTypeDnskey, deadline);
  if (answer.status == DnsStatus::NoData && answer.security == DnsSecurity::Secure) {
    answer = lookup(name, kTypeA, deadline);
  }
  const bool secure = answer.security == DnsSecurity::Secure &&
                      (answer.status == DnsStatus::Ok || answer.status == DnsStatus::NoData);
  if (secure) {
    spdlog::info("dns event=dnssec-self-test result=ok name={}", logfmt_value(name));
  } else {
    spdlog::error(
        "dns event=dnssec-self-test result=failed name={} status={} security={} why_bogus={} "
        "hint={}",
        logfmt_value(name), to_string(answer.status), to_string(answer.security),
        logfmt_value(answer.why_bogus), logfmt_value(self_test_hint(answer)));
  }
  return secure;
}

}  // namespace mtasts::policy::net
