#include "milter/daemon.h"

#include <grp.h>
#include <libmilter/mfapi.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "milter/milter_callbacks.h"
#include "milter/services.h"
#include "policy/net/tls_prober.h"
#include "policy/next_hop_checker.h"
#include "policy/refresher.h"
#include "policy/tlsrpt_buffer.h"
#include "store/tlsrpt_store.h"

namespace mtasts::milter {
namespace {

constexpr auto kDrainLimit = std::chrono::seconds(10);
constexpr auto kRefreshPeriod = std::chrono::minutes(5);

sigset_t daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGPIPE}) sigaddset(&set, sig);
  return set;
}

policy::NextHopCheckerConfig checker_config(const Config& c) {
  policy::NextHopCheckerConfig out;
  out.probing_enabled = c.probe.enabled;
  out.ehlo_name = c.probe.ehlo_name;
  out.probe_step_timeout = std::chrono::milliseconds(c.probe.step_timeout_ms);
  out.probe_success_ttl = c.probe.success_ttl;
  out.probe_failure_ttl = c.probe.failure_ttl;
  return out;
}

// RFC 8460: TLSRPT counts go to the policy cache database (tables
// tlsrpt_failures / tlsrpt_successes) through their own connection.
std::unique_ptr<store::SqliteTlsrptStore> open_tlsrpt_store(const Config& config) {
  try {
    return std::make_unique<store::SqliteTlsrptStore>(config.store_path);
  } catch (const std::exception& e) {
    throw StartupError(e.what(), EX_CANTCREAT);
  }
}

policy::TlsrptBufferConfig tlsrpt_config(const Config& c) {
  policy::TlsrptBufferConfig out;
  out.sending_mta_ip = c.tlsrpt.sending_mta_ip;
  out.flush_interval = std::chrono::seconds(c.tlsrpt.flush_interval);
  return out;
}

// The resolver outlives the buffer (it belongs to Services): detach it, and
// wait for its jobs, before the buffer goes, on every exit path.
class SinkDetach {
 public:
  explicit SinkDetach(policy::Resolver& resolver) : resolver_(resolver) {}
  ~SinkDetach() {
    resolver_.set_tlsrpt_sink(nullptr);
    resolver_.wait_idle();
  }
  SinkDetach(const SinkDetach&) = delete;
  SinkDetach& operator=(const SinkDetach&) = delete;

 private:
  policy::Resolver& resolver_;
};

void open_socket(const Config& config) {
  if (smfi_setconn(const_cast<char*>(config.milter_socket.c_str())) == MI_FAILURE)
    throw StartupError("invalid milter.socket '" + config.milter_socket + "'", EX_CONFIG);
  // true: remove a stale unix socket left by a previous run.
  if (smfi_opensocket(true) == MI_FAILURE)
    throw StartupError("cannot open milter socket '" + config.milter_socket + "'", EX_UNAVAILABLE);
  if (config.milter_socket.starts_with("unix:") || config.milter_socket.starts_with("local:")) {
    const std::string path = config.milter_socket.substr(config.milter_socket.find(':') + 1);
    const auto mode = static_cast<mode_t>(std::stoul(config.socket_mode, nullptr, 8));
    if (chmod(path.c_str(), mode) != 0) throw StartupError("cannot chmod milter socket " + path, EX_OSERR);
  }
}

void drop_privileges(const Config& config) {
  if (config.user.empty()) return;
  const passwd* pw = getpwnam(config.user.c_str());
  if (!pw) throw StartupError("unknown milter.user '" + config.user + "'", EX_NOUSER);
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
    throw StartupError("cannot switch to user '" + config.user + "'", EX_NOPERM);
}

// SIGUSR1: re-read the file; a bad file is refused and the old config stays.
void reload_loop(MilterContext& context, const std::string& path, const std::atomic<bool>& stopping) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  const timespec tick{0, 200'000'000};
  while (!stopping) {
    if (sigtimedwait(&usr1, nullptr, &tick) != SIGUSR1) continue;
    auto fresh = load_config(path);
    if (!fresh) {
      spdlog::error("reload event=refused error=\"{}\" keeping=old-config", fresh.error().detail);
      continue;
    }
    context.replace_config(std::make_shared<const Config>(std::move(*fresh)));
    spdlog::info("reload event=ok path={} note=\"socket, store, dns and probe settings need a restart\"",
                 path.empty() ? "-" : path);
  }
}

// Waits (bounded) for callbacks still deciding, so an MTA waiting on a reply
// gets it; idle connections are not waited for.
void drain(MilterContext& context) {
  const auto give_up = std::chrono::steady_clock::now() + kDrainLimit;
  while (context.callbacks_in_flight > 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  spdlog::info("milter event=stopped callbacks_in_flight={} open_sessions={}", context.callbacks_in_flight.load(),
               context.open_sessions.load());
}

}  // namespace

void block_daemon_signals() {
  const sigset_t set = daemon_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_daemon(const Config& config, const std::string& config_path) {
  auto services = make_services(config);
  const auto tlsrpt_store = open_tlsrpt_store(config);
  // Declared before the checker: destroyed after every probe has reported.
  policy::TlsrptBuffer tlsrpt(tlsrpt_store.get(), tlsrpt_config(config));
  services->resolver->set_tlsrpt_sink(&tlsrpt);
  const SinkDetach detach(*services->resolver);
  policy::net::SmtpTlsProber prober({config.probe.ca_file, config.probe.ehlo_name});
  policy::NextHopChecker checker(*services->resolver, *services->dns, prober, services->clock,
                                 checker_config(config));
  checker.set_tlsrpt_sink(&tlsrpt);
  policy::BackgroundRefresher refresher(*services->resolver, kRefreshPeriod);
  MilterContext context(
      [&checker](const policy::NextHop& hop, policy::Deadline deadline) { return checker.check(hop, deadline); },
      std::make_shared<const Config>(config));

  if (smfi_register(*milter_description(context)) == MI_FAILURE)
    throw StartupError("libmilter refused the filter description", EX_SOFTWARE);
  open_socket(config);
  drop_privileges(config);

  std::atomic<bool> stopping{false};
  std::thread reloader(reload_loop, std::ref(context), config_path, std::cref(stopping));
  spdlog::info("milter event=started socket={} store={}", config.milter_socket, config.store_path);
  const int status = smfi_main();
  stopping = true;
  reloader.join();
  drain(context);
  checker.wait_idle();
  services->resolver->flush();
  services->resolver->wait_idle();
  tlsrpt.flush();  // the buffer's destructor tries once more if this fails
  return status == MI_SUCCESS ? 0 : EX_SOFTWARE;
}

}  // namespace mtasts::milter
