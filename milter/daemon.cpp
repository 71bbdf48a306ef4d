#include "milter/daemon.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "milter/libmilter_listener.h"
#include "milter/limits.h"
#include "milter/listen_socket.h"
#include "milter/metrics_server.h"
#include "milter/milter_callbacks.h"
#include "milter/service_manager.h"
#include "milter/services.h"
#include "milter/socket_activation.h"
#include "milter/socketmap_lookup.h"
#include "milter/socketmap_server.h"
#include "milter/tcp_tuning.h"
#include "milter/tlsrpt_lookup.h"
#include "milter/version.h"
#include "policy/engine/mx_dns_cache.h"
#include "policy/engine/next_hop_checker.h"
#include "policy/engine/refresher.h"
#include "policy/engine/tlsrpt_buffer.h"
#include "policy/logfmt.h"
#include "policy/net/tls_prober.h"
#include "policy/net/tlsrpt_datagram_socket.h"
#include "store/database.h"
#include "store/override_store.h"
#include "store/tlsrpt_store.h"

namespace mtasts::milter {
namespace {

// Everything a stop waits for (callbacks, probes, discoveries, a refresh
// pass) shares this limit, under the contrib unit's TimeoutStopSec=20.
constexpr auto kStopLimit = std::chrono::seconds(15);
// STATUS= for `systemctl status` this often.
constexpr auto kStatusEvery = std::chrono::milliseconds(30000);
// An engine with work that finished no job for this long is wedged: every
// job (a discovery, a probe, a refresh) is bounded by timeouts of seconds,
// and 128 of them started at once still finish well within it. Under the
// contrib unit's WatchdogSec (60 s) plus this, systemd restarts the daemon.
constexpr auto kEngineStallLimit = std::chrono::seconds(120);
constexpr auto kRefreshPeriod = std::chrono::minutes(5);

sigset_t daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  // SIGUSR2: the milter thread tells the main thread that smfi_main returned.
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGPIPE}) sigaddset(&set, sig);
  return set;
}

std::shared_ptr<const ActionOverrides> initial_overrides(store::OverrideStore& overrides,
                                                         const Config& config) {
  auto loaded = overrides.load();
  if (!loaded)
    throw StartupError("Cannot read the table overrides of the policy cache database '" + config.store_path +
                           "': " + loaded.error().detail + ".",
                       EX_IOERR);
  spdlog::info("overrides event=loaded overrides={}", loaded->size());
  return std::make_shared<const ActionOverrides>(parse_overrides(*loaded));
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

// Runs with the starting user's rights (root, usually): the socket may live
// in a root-owned folder, and its owner and mode are set before privileges go.
void open_socket(const Config& config, const Identity& runs_as) {
  if (smfi_setconn(const_cast<char*>(config.milter_socket.c_str())) == MI_FAILURE)
    throw StartupError("invalid milter.socket '" + config.milter_socket + "'", EX_CONFIG);
  const std::string path = unix_socket_path(config.milter_socket);
  const auto owner = socket_ownership(config, runs_as);
  if (!path.empty()) make_socket_folder(path, owner, "milter socket");
  // The umask gives the socket its mode from the start: no moment with more.
  const mode_t old_umask = umask(static_cast<mode_t>(~socket_mode(config) & 0777));
  // true: remove a stale unix socket left by a previous run.
  const int opened = smfi_opensocket(true);
  umask(old_umask);
  if (opened == MI_FAILURE)
    throw StartupError("cannot open milter socket '" + config.milter_socket + "'", EX_UNAVAILABLE);
  if (!path.empty()) secure_socket(path, owner, "milter socket");
}

// A milter socket systemd passed goes to libmilter as it is: no folder,
// owner or mode of ours (the socket unit's), no unix path to remove.
void open_activated_socket(int fd, const Config& config) {
  const std::string spec = libmilter_spec_for(fd);
  if (spec.empty() || smfi_setconn(const_cast<char*>(spec.c_str())) == MI_FAILURE)
    throw StartupError("libmilter refused the milter socket systemd passed (" + listening_address(fd) + ")",
                       EX_UNAVAILABLE);
  begin_listener_handover(fd);
  const int opened = smfi_opensocket(false);
  end_listener_handover();
  if (opened == MI_FAILURE)
    throw StartupError(
        "libmilter cannot listen on the milter socket systemd passed (" + listening_address(fd) + ")",
        EX_UNAVAILABLE);
  spdlog::info("startup event=socket-activated name=milter address={} instead_of={}", listening_address(fd),
               config.milter_socket);
}

// The config with the addresses of the sockets systemd passed in place of
// milter.socket and socketmap.socket.
Config with_activated_addresses(const Config& configured, const ActivatedSockets& activated) {
  Config config = configured;
  if (activated.milter >= 0) config.milter_socket = listening_address(activated.milter);
  if (activated.socketmap >= 0) config.socketmap.socket = listening_address(activated.socketmap);
  return config;
}

// The socketmap server polls its listener: non-blocking, as open_listener's.
int adopt_activated_socketmap(int fd, const Config& config) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    throw StartupError("cannot make the socketmap socket systemd passed non-blocking", EX_OSERR);
  spdlog::info("startup event=socket-activated name=socketmap address={} instead_of={}",
               listening_address(fd), config.socketmap.socket.empty() ? "none" : config.socketmap.socket);
  return fd;
}

// The store folder, created for the user the daemon will run as, so that
// the cache database and its journal files are that user's.
void prepare_store_folder(const Config& config, const Identity& runs_as) {
  if (config.user.empty()) return;
  const auto folder = std::filesystem::path(config.store_path).parent_path();
  std::error_code ec;
  if (folder.empty() || std::filesystem::exists(folder, ec)) return;
  std::filesystem::create_directories(folder, ec);
  if (ec || chown(folder.c_str(), runs_as.uid, runs_as.gid) != 0)
    throw StartupError("cannot create the store folder " + folder.string() + " for user " + runs_as.name,
                       EX_CANTCREAT);
}

void drop_privileges(const Identity& runs_as) {
  if (runs_as.name.empty()) return;
  // Already that user without root (systemd's User= naming the same one):
  // nothing to drop, and initgroups() would fail. The groups stay as the
  // starter chose them (systemd's Group=).
  if (geteuid() != 0 && getuid() == runs_as.uid && geteuid() == runs_as.uid) {
    spdlog::info("milter event=privileges-kept user={} uid={} reason=already-that-user", runs_as.name,
                 runs_as.uid);
    return;
  }
  if (initgroups(runs_as.name.c_str(), runs_as.gid) != 0 || setgid(runs_as.gid) != 0 ||
      setuid(runs_as.uid) != 0)
    throw StartupError("cannot switch to user '" + runs_as.name + "'", EX_NOPERM);
  spdlog::info("milter event=privileges-dropped user={} uid={} gid={}", runs_as.name, runs_as.uid,
               runs_as.gid);
}

// SIGUSR1: re-read the file and the overrides table; the two are replaced
// together, or (a bad file, an unreadable table) neither is.
bool reload_once(MilterContext& context, store::OverrideStore& override_store, const std::string& path) {
  auto fresh = load_config(path);
  if (!fresh) {
    spdlog::error("reload event=refused error=\"{}\" keeping=old-config", fresh.error().detail);
    return false;
  }
  if (const auto checked = check_settings(*fresh); !checked) {
    spdlog::error("reload event=refused error={} keeping=old-config",
                  policy::logfmt_value(checked.error().detail));
    return false;
  }
  auto overrides = override_store.load();
  if (!overrides) {
    spdlog::error("reload event=refused error=\"overrides: {}\" keeping=old-config", overrides.error().code);
    return false;
  }
  const std::size_t count = overrides->size();
  context.replace_settings({std::make_shared<const Config>(std::move(*fresh)),
                            std::make_shared<const ActionOverrides>(parse_overrides(*overrides))});
  spdlog::info(
      "reload event=ok path={} overrides={} note=\"socket, store, dns and probe settings need a restart\"",
      path.empty() ? "-" : path, count);
  return true;
}

// Reloads asked for by the signal loop, carried out on their own thread so
// the main thread is back waiting for signals at once.
class ReloadRequests {
 public:
  void request() {
    {
      const std::lock_guard lock(mutex_);
      ++pending_;
    }
    changed_.notify_one();
  }
  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_one();
  }
  // Waits for a request; false once stopping. Requests made during a reload
  // are served by one more reload.
  bool next() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return stopping_ || pending_ > 0; });
    if (stopping_) return false;
    pending_ = 0;
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int pending_ = 0;
  bool stopping_ = false;
};

// `reloaded` runs after each reload that replaced the settings. systemd
// hears RELOADING=1 before and READY=1 after, whether the new settings or
// the old ones are in force then.
void reload_loop(MilterContext& context, store::OverrideStore& override_store, const std::string& path,
                 ReloadRequests& requests, const std::function<void()>& reloaded,
                 const ServiceManager& systemd, const std::function<std::string()>& status) {
  while (requests.next()) {
    systemd.reloading();
    try {
      if (reload_once(context, override_store, path)) reloaded();
    } catch (const std::exception& e) {  // the thread must survive a failed reload
      spdlog::error("reload event=refused error=\"{}\" keeping=old-config", e.what());
    }
    systemd.ready(status());
  }
}

enum class StopCause { Requested, MilterEnded };

// The main thread's signal loop while libmilter runs on its own thread.
// libmilter's signal thread stops the milter on SIGHUP, and with exit 0, so
// Restart=on-failure left it down; mail daemons reload on SIGHUP. Linux
// hands a process-directed signal to the main thread whenever that thread
// is waiting for it, so SIGHUP, SIGTERM and SIGINT come here, not to
// libmilter: SIGHUP and SIGUSR1 reload, SIGTERM and SIGINT stop the milter
// with smfi_stop(). SIGUSR2 from the milter thread: smfi_main returned.
StopCause wait_for_stop(ReloadRequests& reloads) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGHUP, SIGUSR1, SIGTERM, SIGINT, SIGUSR2}) sigaddset(&set, sig);
  for (;;) {
    const int sig = sigwaitinfo(&set, nullptr);
    if (sig == SIGHUP || sig == SIGUSR1) {
      reloads.request();
    } else if (sig == SIGTERM || sig == SIGINT) {
      release_accept_waits();
      smfi_stop();
      return StopCause::Requested;
    } else if (sig == SIGUSR2) {
      return StopCause::MilterEnded;
    }
  }
}

// The exit status once smfi_main has returned. A stop nobody asked for
// (libmilter failed, or took a signal meant for us) is a failure, so that
// Restart=on-failure brings the daemon back.
int exit_status(StopCause cause, int milter_status) {
  if (milter_status != MI_SUCCESS) return EX_SOFTWARE;
  if (cause == StopCause::Requested) return 0;
  spdlog::error("milter event=stopped-unrequested note=\"libmilter returned without a stop signal\"");
  return EX_TEMPFAIL;
}

// Shuts new callbacks out first (a connection the MTA keeps open may still
// call in: its recipients are deferred), then waits until `give_up` for
// those still deciding, so an MTA waiting on a reply gets it. Idle
// connections are not waited for. True when none is left.
bool drain(ContextInstalled& installed, std::chrono::steady_clock::time_point give_up) {
  spdlog::info("milter event=stopping callbacks_in_flight={}", callbacks_in_flight());
  const bool drained = installed.close(give_up);
  const TcpTuningCounts tcp = tcp_tuning_counts();
  spdlog::info(
      "milter event=stopped callbacks_in_flight={} open_sessions={} tcp_connections={} quickack_resets={} "
      "accept_waits={}",
      callbacks_in_flight(), open_milter_connections(), tcp.tcp_connections, tcp.quickack_resets,
      accept_waits());
  return drained;
}

void stop_socketmap(SocketmapServer& server) {
  server.stop();
  const SocketmapCounts n = server.counts();
  spdlog::info(
      "socketmap event=stopped connections={} requests={} warm_answers={} lookups={} temp_deadline={} "
      "refused={} malformed={} idle_closed={}",
      n.connections, n.requests, n.warm_answers, n.lookups, n.temp_deadline, n.refused, n.malformed,
      n.idle_closed);
}

// Threads still running (a callback past the limit, a slow fetch or probe)
// use the objects run_daemon would destroy on return: exit without running
// destructors. What was committed is in SQLite; the log says what was cut.
[[noreturn]] void exit_now(int exit_code) {
  spdlog::warn(
      "milter event=exit-without-waiting limit_s={} note=\"work still running was cut; its results are "
      "lost\"",
      std::chrono::duration_cast<std::chrono::seconds>(kStopLimit).count());
  spdlog::default_logger()->flush();
  std::_Exit(exit_code);
}

}  // namespace

void become_configured_user(const Config& config) {
  if (config.user.empty() || geteuid() != 0) return;
  const Identity runs_as = run_as(config);
  prepare_store_folder(config, runs_as);
  drop_privileges(runs_as);
}

void block_daemon_signals() {
  const sigset_t set = daemon_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

namespace {

struct FittedLimits {
  std::size_t engine_threads = 0;         // the engine's worker threads
  std::size_t connections = 0;            // open milter connections
  std::size_t waiting_rcpts = 0;          // recipients waiting for the engine at once
  std::size_t socketmap_connections = 0;  // open socketmap connections
  std::size_t socketmap_lookup_threads = 0;
};

// The socketmap's threads (its loop and lookup threads) start after the
// limits are read: they are fitted first and come off the tasks left.
std::size_t socketmap_threads(const Config& config, std::optional<std::uint64_t> tasks_free) {
  if (config.socketmap.socket.empty()) return 0;
  return tasks_free ? socketmap_threads_that_fit_tasks(config.socketmap.lookup_threads, *tasks_free)
                    : config.socketmap.lookup_threads;
}

std::optional<std::uint64_t> tasks_left_for_rcpts(const Config& config,
                                                  std::optional<std::uint64_t> tasks_free,
                                                  std::size_t lookup_threads) {
  if (!tasks_free || config.socketmap.socket.empty()) return tasks_free;
  const std::uint64_t taken = lookup_threads + 1;
  return *tasks_free > taken ? *tasks_free - taken : 0;
}

// Fits the connection cap into the descriptor limit (raised at start), and
// the recipients that may wait (each holds a libmilter worker thread) into
// the tasks the cgroup still allows, read once the engine's threads run.
FittedLimits fit_limits(const Config& config, const DescriptorLimit& descriptors,
                        std::size_t engine_threads) {
  const std::optional<std::uint64_t> headroom = task_headroom();
  const std::size_t lookup_threads = socketmap_threads(config, headroom);
  const std::optional<std::uint64_t> tasks_free = tasks_left_for_rcpts(config, headroom, lookup_threads);
  FittedLimits fitted{engine_threads, connections_that_fit(config.max_connections, descriptors.soft),
                      tasks_free ? waiting_rcpts_that_fit_tasks(config.engine.max_waiting_rcpts, *tasks_free)
                                 : config.engine.max_waiting_rcpts,
                      0, lookup_threads};
  // The socketmap's connections share what the milter's leave.
  fitted.socketmap_connections =
      connections_that_fit(config.socketmap.max_connections,
                           descriptors.soft > fitted.connections ? descriptors.soft - fitted.connections : 1);
  spdlog::info(
      "milter event=limits descriptors={} descriptors_raised={} tasks_free={} engine_threads={} "
      "max_connections={} max_waiting_rcpts={} socketmap_max_connections={} socketmap_lookup_threads={}",
      descriptors.soft, descriptors.raised, tasks_free ? std::to_string(*tasks_free) : "-",
      fitted.engine_threads, fitted.connections, fitted.waiting_rcpts, fitted.socketmap_connections,
      fitted.socketmap_lookup_threads);
  if (fitted.engine_threads < config.engine.threads)
    spdlog::warn(
        "milter event=limits engine_threads={} configured={} note=\"lowered to fit the task limit; raise "
        "TasksMax\"",
        fitted.engine_threads, config.engine.threads);
  if (fitted.connections < config.max_connections)
    spdlog::warn(
        "milter event=limits max_connections={} configured={} descriptors={} note=\"lowered to fit the "
        "descriptor limit; raise LimitNOFILE\"",
        fitted.connections, config.max_connections, descriptors.soft);
  if (fitted.waiting_rcpts < config.engine.max_waiting_rcpts)
    spdlog::warn(
        "milter event=limits max_waiting_rcpts={} configured={} tasks_free={} note=\"lowered to fit the "
        "task limit (a waiting recipient holds a thread); raise TasksMax\"",
        fitted.waiting_rcpts, config.engine.max_waiting_rcpts, *tasks_free);
  if (!config.socketmap.socket.empty() && fitted.socketmap_connections < config.socketmap.max_connections)
    spdlog::warn(
        "milter event=limits socketmap_max_connections={} configured={} descriptors={} note=\"lowered to fit "
        "the descriptor limit; raise LimitNOFILE\"",
        fitted.socketmap_connections, config.socketmap.max_connections, descriptors.soft);
  return fitted;
}

}  // namespace

namespace {

// glibc gives each thread that allocates under contention an arena of its
// own, up to 8 per CPU; the engine's workers and the socketmap's lookup
// threads all allocate during a burst of TLS fetches, and each arena keeps
// its peak. One per CPU (at least 2) cut the daemon's RSS after 2,000 cold
// domains from 55.5 to 49.6 MiB with no measurable CPU cost
// (tests/bench/run_socketmap_bench.sh). MALLOC_ARENA_MAX in the environment wins.
void limit_malloc_arenas() {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;
  mallopt(M_ARENA_MAX, static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
}

// Under a task limit the engine's threads are fitted before it starts them:
// they leave the rest to libmilter's workers and the waiting recipients.
Config with_engine_threads_fitted(const Config& config) {
  Config fitted = config;
  if (const std::optional<std::uint64_t> headroom = task_headroom())
    fitted.engine.threads = engine_threads_that_fit_tasks(config.engine.threads, *headroom);
  return fitted;
}

// Under a task limit, libmilter's accept waits while this process is within
// kThreadMargin threads of what the limit leaves it (milter/tcp_tuning.h:
// a thread that cannot start strands its MTA connection). Called once every
// thread of ours but libmilter's sessions is running.
void limit_accepts_to_task_room() {
  constexpr std::size_t kThreadMargin = 16;  // the metrics and watchdog threads, libc's own
  const std::optional<std::uint64_t> headroom = task_headroom();
  const std::size_t threads = threads_of_this_process();
  if (!headroom || threads == 0) return;
  const std::size_t budget = threads + static_cast<std::size_t>(*headroom);
  if (budget <= threads + kThreadMargin) return;  // no room to give: libmilter as it is
  set_accept_thread_budget(budget - kThreadMargin);
  spdlog::info("milter event=accept-budget threads_now={} thread_budget={} note=\"accepts wait beyond it\"",
               threads, budget - kThreadMargin);
}

// The metrics read when scraped (README "Metrics"), in the text format.
std::string scrape_gauges(const Services& services, std::size_t waiting_rcpts, std::int64_t tlsrpt_pending) {
  std::string out;
  const auto gauge = [&out](const char* name, const char* help, auto value) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, value);
  };
  gauge("mtasts_policies_in_memory", "Policies held in the in-memory cache",
        services.resolver->policies_in_memory());
  gauge("mtasts_milter_sessions", "Milter connections open now", open_milter_connections());
  gauge("mtasts_recipients_waiting", "RCPT callbacks waiting for a discovery or probe", waiting_rcpts);
  gauge("mtasts_engine_jobs_running", "Engine jobs (discoveries, probes, refreshes) running",
        services.pool->busy());
  gauge("mtasts_engine_jobs_queued", "Engine jobs waiting for a thread", services.pool->queued());
  gauge("mtasts_tlsrpt_pending_sessions", "TLSRPT sessions counted in memory, not yet written",
        tlsrpt_pending);
  // The store counts its failures itself (an adapter does not reach the engine's registry).
  out += fmt::format(
      "# HELP mtasts_store_errors_total SQLite statements that failed\n"
      "# TYPE mtasts_store_errors_total counter\nmtasts_store_errors_total {}\n",
      store::failed_statements());
  return out;
}

// libtlsrpt datagrams both ways (README "TLSRPT datagrams"), when set:
// our sessions go to `tlsrpt` and a collector; Postfix's go to `tlsrpt`.
class TlsrptDatagrams {
 public:
  TlsrptDatagrams(const Config& config, policy::TlsrptBuffer& tlsrpt, Services& services, int receive_fd)
      : tlsrpt_(tlsrpt) {
    if (!config.tlsrpt.datagram_forward.empty()) {
      policy::net::DatagramForwarderConfig forward;
      forward.socket_path = config.tlsrpt.datagram_forward;
      forwarder_.emplace(&tlsrpt, forward, [dns = services.dns.get()](const std::string& domain) {
        return tlsrpt_record_text(*dns, domain);
      });
      spdlog::info("tlsrpt-datagram event=forwarding socket={}", policy::logfmt_value(forward.socket_path));
    }
    if (receive_fd >= 0) {
      receiver_.emplace(receive_fd, tlsrpt, [&services] { return services.clock.now(); });
      spdlog::info("tlsrpt-datagram event=listening socket={}",
                   policy::logfmt_value(config.tlsrpt.datagram_socket));
    }
  }
  ~TlsrptDatagrams() {
    if (receiver_) {
      const auto c = receiver_->counts();
      spdlog::info("tlsrpt-datagram event=stopped datagrams={} rejected={} sessions={}", c.datagrams,
                   c.rejected, c.sessions);
    }
    if (forwarder_) {
      forwarder_->stop();  // not wait_idle(): that waits for a busy collector
      const auto c = forwarder_->counts();
      spdlog::info("tlsrpt-datagram event=forward-stopped sent={} no_record={} queue_full={} send_failed={}",
                   c.sent, c.no_record, c.queue_full, c.send_failed);
    }
  }
  TlsrptDatagrams(const TlsrptDatagrams&) = delete;
  TlsrptDatagrams& operator=(const TlsrptDatagrams&) = delete;

  // Where the engine's sessions go.
  policy::TlsrptSink& sink() {
    if (forwarder_) return *forwarder_;
    return tlsrpt_;
  }

 private:
  policy::TlsrptBuffer& tlsrpt_;
  std::optional<policy::net::DatagramForwarder> forwarder_;
  std::optional<policy::net::DatagramReceiver> receiver_;
};

}  // namespace

int run_daemon(const Config& configured, const std::string& config_path) {
  limit_malloc_arenas();  // before any thread starts
  const DescriptorLimit descriptors = raise_descriptor_limit();
  const ActivatedSockets activated = take_activated_sockets();
  // Sockets systemd passed are the addresses in force from here on (the
  // limits fitted to a socketmap, the log lines).
  const Config config = with_activated_addresses(configured, activated);
  // The socket first, with the starting user's rights; everything else
  // (the store, DNS, probes) as the user the daemon runs as.
  const Identity runs_as = run_as(config);
  if (smfi_register(*milter_description()) == MI_FAILURE)
    throw StartupError("libmilter refused the filter description", EX_SOFTWARE);
  if (activated.milter >= 0) {
    open_activated_socket(activated.milter, configured);
  } else {
    open_socket(config, runs_as);
  }
  const int socketmap_fd = activated.socketmap >= 0
                               ? adopt_activated_socketmap(activated.socketmap, configured)
                           : config.socketmap.socket.empty()
                               ? -1
                               : open_listener(config.socketmap.socket, config, runs_as, "socketmap socket");
  const int datagram_fd =
      config.tlsrpt.datagram_socket.empty()
          ? -1
          : open_datagram_socket(config.tlsrpt.datagram_socket, config, runs_as, "TLSRPT datagram socket");
  // Served once the engine exists (below); opened here, before privileges
  // go, as the other sockets are.
  const int metrics_fd = config.metrics.listen.empty()
                             ? -1
                             : open_listener(config.metrics.listen, config, runs_as, "metrics socket");
  prepare_store_folder(config, runs_as);
  drop_privileges(runs_as);

  auto services = make_services(with_engine_threads_fitted(config), ServicesFor::Daemon);
  // RFC 8460: TLSRPT counts go to the policy cache database (tables
  // tlsrpt_failures / tlsrpt_successes) through its one writer.
  store::SqliteTlsrptStore tlsrpt_store(services->database);
  // Declared before the checker: destroyed after every probe has reported.
  policy::TlsrptBuffer tlsrpt(&tlsrpt_store, tlsrpt_config(config));
  TlsrptDatagrams datagrams(config, tlsrpt, *services, datagram_fd);
  services->resolver->set_tlsrpt_sink(&datagrams.sink());
  const SinkDetach detach(*services->resolver);
  // Warm checks then ask no resolver: MX, TLSA and addresses are kept for
  // their TTL, at most as long as a verified probe.
  const auto dns_cache_ttl =
      static_cast<std::uint32_t>(std::min<std::int64_t>(config.probe.success_ttl, 300));
  policy::MxDnsCache next_hop_dns(*services->dns, services->clock, dns_cache_ttl);
  policy::MxDnsCache known_policy_next_hop_dns(*services->known_policy_dns, services->clock, dns_cache_ttl);
  policy::NextHopChecker checker(*services->resolver, next_hop_dns, *services->prober, services->clock,
                                 checker_config(config), services->pool.get(), &known_policy_next_hop_dns);
  checker.set_tlsrpt_sink(&datagrams.sink());
  policy::BackgroundRefresher refresher(*services->resolver, kRefreshPeriod);
  // Per-domain overrides (table `overrides`, schema v3): the start-up read
  // must succeed; a later failed read keeps the overrides in force.
  store::OverrideStore override_store(services->database);
  const FittedLimits limits = fit_limits(config, descriptors, services->pool->threads());
  set_connection_limit(static_cast<int>(limits.connections));
  WaitingRcpts waiting(limits.waiting_rcpts);  // outlives the context that uses it
  MilterContext context(
      waiting.bounded([&checker](const policy::NextHop& hop, policy::Deadline deadline) {
        return checker.check(hop, deadline);
      }),
      Settings{std::make_shared<const Config>(config), initial_overrides(override_store, config)});
  ContextInstalled installed(context);
  SocketmapLookup socketmap_lookup(*services->resolver, known_policy_next_hop_dns, services->clock,
                                   [&context] { return context.settings(); });
  std::optional<SocketmapServer> socketmap;
  if (socketmap_fd >= 0) {
    SocketmapServerConfig server_config = socketmap_server_config(config);
    server_config.max_connections = limits.socketmap_connections;
    server_config.lookup_threads = limits.socketmap_lookup_threads;
    socketmap.emplace(
        socketmap_fd, server_config,
        [&socketmap_lookup](const std::string& key, policy::Deadline deadline) {
          return socketmap_lookup.lookup(key, deadline);
        },
        [&services] { return services->clock.now(); });
    socketmap->start();
    spdlog::info("socketmap event=started socket={} maps={}", config.socketmap.socket,
                 fmt::join(config.socketmap.map_names, ","));
  }

  ReloadRequests reloads;
  // A reload also drops the socketmap's remembered answers: they were made
  // with the old settings.
  const std::function<void()> reloaded = [&socketmap] {
    if (socketmap) socketmap->forget_answers();
  };
  const ServiceManager systemd;
  const std::function<std::string()> status = [&services, &waiting] {
    return "policies in memory: " + std::to_string(services->resolver->policies_in_memory()) +
           ", milter sessions: " + std::to_string(open_milter_connections()) +
           ", recipients waiting: " + std::to_string(waiting.waiting());
  };
  // Before any thread of ours starts: a failure here throws, and a running
  // std::thread would end the process on unwinding.
  std::optional<MetricsServer> metrics;
  if (metrics_fd >= 0) {
    metrics.emplace(metrics_fd, config.metrics.listen, [&services, &waiting, &tlsrpt] {
      return scrape_gauges(*services, waiting.waiting(), tlsrpt.pending_sessions());
    });
    spdlog::info("metrics event=listening address={} path=/metrics", config.metrics.listen);
  }
  std::thread reloader(reload_loop, std::ref(context), std::ref(override_store), config_path,
                       std::ref(reloads), std::cref(reloaded), std::cref(systemd), std::cref(status));
  spdlog::info("milter event=started version={} socket={} store={}", kVersion, config.milter_socket,
               config.store_path);
  limit_accepts_to_task_room();
  int milter_status = MI_FAILURE;
  std::atomic<bool> milter_running{true};
  std::thread milter([&milter_status, &milter_running, main_thread = pthread_self()] {
    milter_status = smfi_main();
    milter_running = false;
    pthread_kill(main_thread, SIGUSR2);
  });
  PoolProgress pool_progress(kEngineStallLimit);
  const ServiceWatchdog watchdog(
      systemd,
      [&] {
        if (!milter_running) return std::string("milter-loop-ended");
        return pool_progress.check(services->pool->completed(), services->pool->busy(),
                                   std::chrono::steady_clock::now());
      },
      status, kStatusEvery);
  systemd.ready(status());
  const StopCause cause = wait_for_stop(reloads);
  systemd.stopping();
  milter.join();  // smfi_main returns within libmilter's poll interval of smfi_stop()
  if (socketmap) stop_socketmap(*socketmap);
  const int exit_code = exit_status(cause, milter_status);
  reloads.stop();
  refresher.request_stop();  // a refresh pass ends after its current domain
  reloader.join();
  const auto give_up = std::chrono::steady_clock::now() + kStopLimit;
  const bool drained = drain(installed, give_up);
  const bool idle = refresher.wait_stopped_until(give_up) && checker.wait_idle_until(give_up) &&
                    services->resolver->wait_idle_until(give_up) && services->pool->stop_until(give_up);
  services->resolver->flush();
  tlsrpt.flush();  // the buffer's destructor tries once more if this fails
  if (!drained || !idle) exit_now(exit_code);
  return exit_code;
}

}  // namespace mtasts::milter
