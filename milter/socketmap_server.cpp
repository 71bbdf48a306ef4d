#include "milter/socketmap_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "policy/ascii.h"
#include "policy/engine/metrics.h"
#include "policy/log_throttle.h"
#include "policy/logfmt.h"
#include "policy/socketmap.h"

namespace mtasts::milter {
namespace {

using policy::SocketmapStatus;
using Steady = std::chrono::steady_clock;

constexpr std::uint64_t kListenId = 0;
constexpr std::uint64_t kWakeId = 1;
constexpr std::size_t kReadChunk = 16384;
constexpr std::size_t kMaxUnreadReplyBytes = 256 * 1024;
constexpr std::size_t kMaxRequestsInProgress = 64;
constexpr auto kSweepInterval = std::chrono::seconds(1);
constexpr std::int64_t kWarnInterval = 10;  // s between rate-limited warnings

// One request's place in its connection's reply order.
struct Slot {
  std::uint64_t seq = 0;
  bool ready = false;
  std::string reply;  // framed
};

struct Connection {
  Connection(int descriptor, std::uint64_t connection_id)
      : fd(descriptor), id(connection_id), reader(policy::kPostfixMaxRequestBytes) {}
  int fd;
  std::uint64_t id;
  policy::NetstringReader reader;
  std::deque<Slot> slots;  // in request order; front is the next reply
  std::uint64_t next_seq = 0;
  std::string out;  // replies not yet written
  std::size_t out_sent = 0;
  Steady::time_point last_activity = Steady::now();
  bool closing = false;  // no more reads; close once the replies are out
  std::uint32_t events = 0;
};

// A request waiting for a lookup, answered TEMP at its deadline.
struct Waiter {
  std::uint64_t connection = 0;
  std::uint64_t seq = 0;
  Steady::time_point deadline;
  bool plain = false;  // a Sendmail map: the reply without TLSRPT attributes
};

struct Answer {
  policy::SocketmapReply reply;
  std::optional<policy::SocketmapReply> plain_reply;  // without TLSRPT attributes, when it differs
  std::int64_t reuse_until = 0;
  std::int64_t stale_until = 0;  // given while a new lookup runs

  // The reply for a Sendmail map (`plain`) or a Postfix one.
  const policy::SocketmapReply& for_map(bool plain) const {
    return plain && plain_reply ? *plain_reply : reply;
  }
};

// The loop's remembered answers, at most `capacity`. A full table forgets
// the answer used the longest ago, one per new key: clearing it whole would
// send every warm key back to the resolver at once. find() and put() are
// O(1) and find() allocates nothing. The loop's own: no lock.
class AnswerTable {
 public:
  explicit AnswerTable(std::size_t capacity) : capacity_(capacity) {}

  // The answer for `key`, now the most recently used; nullptr when none.
  const Answer* find(std::string_view key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }
  // Inserts or replaces `key`'s answer as the most recently used.
  void put(const std::string& key, Answer answer) {
    if (const auto it = index_.find(key); it != index_.end()) {
      it->second->second = std::move(answer);
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    if (capacity_ == 0) return;
    if (index_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(key, std::move(answer));
    index_.emplace(order_.front().first, order_.begin());
  }
  void erase(std::string_view key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return;
    const auto entry = it->second;
    index_.erase(it);
    order_.erase(entry);
  }
  void clear() {
    index_.clear();
    order_.clear();
  }

 private:
  using Entry = std::pair<const std::string, Answer>;
  std::size_t capacity_;
  std::list<Entry> order_;  // front: the most recently used
  // Keyed by views of the keys in order_: a list node never moves.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
};

int checked(int result, const char* what) {
  if (result < 0) throw std::system_error(errno, std::generic_category(), what);
  return result;
}

}  // namespace

struct SocketmapServer::Impl {
  Impl(int listen, SocketmapServerConfig c, SocketmapLookupFunction l, UnixClock u)
      : listen_fd(listen),
        config(std::move(c)),
        lookup(std::move(l)),
        unix_now(std::move(u)),
        map_names(config.map_names.begin(), config.map_names.end()),
        sendmail_maps(config.sendmail_map_names.begin(), config.sendmail_map_names.end()),
        answers(config.max_answers) {}

  // ---- shared with the lookup threads (under mu; `stopping` is read and
  // written only under it: the lookup threads wait on it) ----
  std::mutex mu;
  std::condition_variable jobs_changed;
  std::deque<std::string> jobs;
  std::vector<std::pair<std::string, SocketmapLookupResult>> done;
  bool stopping = false;
  // ---- set by any thread ----
  std::atomic<bool> forget{false};

  // ---- the loop's own ----
  int listen_fd;
  int epoll_fd = -1;
  // Written by start() before any other thread may use it, closed only by the
  // destructor: forget_answers() and stop() may write to it from any thread.
  int wake_fd = -1;
  SocketmapServerConfig config;
  SocketmapLookupFunction lookup;
  UnixClock unix_now;
  std::set<std::string, std::less<>> map_names;
  std::set<std::string, std::less<>> sendmail_maps;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections;
  std::uint64_t next_id = 2;
  std::unordered_map<std::string, std::vector<Waiter>> flights;  // keys being looked up
  std::deque<Waiter> deadlines;                                  // by deadline (one fixed delay)
  AnswerTable answers;
  std::int64_t now_unix = 0;
  Steady::time_point next_sweep = Steady::now();
  bool accepting = true;
  policy::LogThrottle refused_log{kWarnInterval};
  policy::LogThrottle malformed_log{kWarnInterval};
  policy::LogThrottle overloaded_log{kWarnInterval};

  std::thread loop_thread;
  std::vector<std::thread> lookup_threads;

  // Counters: written by the loop, read by anyone.
  std::atomic<std::uint64_t> n_connections{0}, n_requests{0}, n_warm{0}, n_lookups{0}, n_temp_deadline{0},
      n_refused{0}, n_malformed{0}, n_idle_closed{0};

  void run_loop();
  void run_lookups();
  void wake() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = write(wake_fd, &one, sizeof one);
  }

  void accept_all();
  void admit(int fd);
  bool evict_idle();
  void on_readable(Connection& c);
  void process_frames(Connection& c);
  void handle_request(Connection& c, const std::string& payload);
  void count_answer(SocketmapStatus status, Steady::time_point asked);
  Steady::time_point request_started;  // of the request being handled (the loop's thread)
  void answer_now(Connection& c, policy::SocketmapReply reply);
  void wait_for_lookup(Connection& c, std::string key, bool plain);
  bool start_lookup(const std::string& key);
  void take_done();
  void answer_waiters(const std::vector<Waiter>& waiters, const Answer& answer);
  void fill(const Waiter& w, const policy::SocketmapReply& reply);
  void flush(Connection& c);
  bool write_out(Connection& c);
  void update_events(Connection& c);
  void close_connection(std::uint64_t id);
  void expire_deadlines(Steady::time_point now);
  void sweep(Steady::time_point now);
  void answer_everyone_stopping();
  int timeout_ms(Steady::time_point now) const;
  Connection* find(std::uint64_t id) {
    const auto it = connections.find(id);
    return it == connections.end() ? nullptr : it->second.get();
  }
};

SocketmapServer::SocketmapServer(int listen_fd, SocketmapServerConfig config, SocketmapLookupFunction lookup,
                                 UnixClock clock)
    : impl_(std::make_unique<Impl>(listen_fd, std::move(config), std::move(lookup), std::move(clock))) {}

SocketmapServer::~SocketmapServer() {
  stop();
  Impl& m = *impl_;
  if (m.epoll_fd >= 0) close(m.epoll_fd);
  if (m.wake_fd >= 0) close(m.wake_fd);
  if (m.listen_fd >= 0) close(m.listen_fd);
}

void SocketmapServer::start() {
  Impl& m = *impl_;
  m.epoll_fd = checked(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
  m.wake_fd = checked(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
  epoll_event listen_event{EPOLLIN, {.u64 = kListenId}};
  checked(epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.listen_fd, &listen_event), "epoll_ctl listen");
  epoll_event wake_event{EPOLLIN, {.u64 = kWakeId}};
  checked(epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.wake_fd, &wake_event), "epoll_ctl wake");
  for (std::size_t i = 0; i < std::max<std::size_t>(m.config.lookup_threads, 1); ++i)
    m.lookup_threads.emplace_back([&m] { m.run_lookups(); });
  m.loop_thread = std::thread([&m] { m.run_loop(); });
}

void SocketmapServer::stop() {
  Impl& m = *impl_;
  {
    const std::lock_guard lock(m.mu);
    if (m.stopping && !m.loop_thread.joinable()) return;
    m.stopping = true;
  }
  m.jobs_changed.notify_all();
  if (m.wake_fd >= 0) m.wake();
  if (m.loop_thread.joinable()) m.loop_thread.join();
  for (auto& t : m.lookup_threads)
    if (t.joinable()) t.join();
  m.lookup_threads.clear();
  // The descriptors stay open until the destructor: a reload may still call
  // forget_answers(), and a closed wake_fd could by then be another file.
}

void SocketmapServer::forget_answers() {
  impl_->forget = true;
  if (impl_->wake_fd >= 0) impl_->wake();
}

SocketmapCounts SocketmapServer::counts() const {
  const Impl& m = *impl_;
  return {m.n_connections,   m.n_requests, m.n_warm,      m.n_lookups,
          m.n_temp_deadline, m.n_refused,  m.n_malformed, m.n_idle_closed};
}

// ---- lookup threads ----------------------------------------------------

void SocketmapServer::Impl::run_lookups() {
  for (;;) {
    std::string key;
    {
      std::unique_lock lock(mu);
      jobs_changed.wait(lock, [&] { return stopping || !jobs.empty(); });
      if (stopping) return;
      key = std::move(jobs.front());
      jobs.pop_front();
    }
    SocketmapLookupResult result;
    try {
      result = lookup(key, Steady::now() + config.deadline);
    } catch (const std::exception& e) {  // a bug: this key answers TEMP, the server goes on
      spdlog::error("socketmap event=internal-error key={} error={}", policy::logfmt_value(key),
                    policy::logfmt_value(e.what()));
      result.answer = {SocketmapStatus::Temp, "MTA-STS lookup failed (internal error)", "internal-error"};
    }
    {
      const std::lock_guard lock(mu);
      done.emplace_back(std::move(key), std::move(result));
    }
    wake();
  }
}

// ---- the event loop ----------------------------------------------------

void SocketmapServer::Impl::run_loop() {
  std::vector<epoll_event> events(256);
  for (;;) {
    {
      const std::lock_guard lock(mu);
      if (stopping) break;
    }
    const int n =
        epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms(Steady::now()));
    if (n < 0 && errno != EINTR) {
      spdlog::error("socketmap event=epoll-failed error={}", policy::logfmt_value(std::strerror(errno)));
      break;
    }
    now_unix = unix_now();
    if (forget.exchange(false)) answers.clear();
    for (int i = 0; i < std::max(n, 0); ++i) {
      const std::uint64_t id = events[i].data.u64;
      if (id == kListenId) {
        accept_all();
      } else if (id == kWakeId) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto got = read(wake_fd, &count, sizeof count);
        take_done();
      } else if (Connection* c = find(id)) {
        if (events[i].events & (EPOLLHUP | EPOLLERR)) {  // nobody left to answer
          close_connection(id);
          continue;
        }
        if (events[i].events & EPOLLIN) on_readable(*c);
        if ((c = find(id)) && (events[i].events & EPOLLOUT)) flush(*c);
      }
    }
    const auto now = Steady::now();
    expire_deadlines(now);
    if (now >= next_sweep) sweep(now);
  }
  answer_everyone_stopping();
}

int SocketmapServer::Impl::timeout_ms(Steady::time_point now) const {
  auto until = next_sweep;
  if (!deadlines.empty()) until = std::min(until, deadlines.front().deadline);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
  return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 1000));
}

void SocketmapServer::Impl::accept_all() {
  while (accepting) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      admit(fd);
      continue;
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // Out of descriptors: stop accepting until the next sweep, or the
      // level-triggered listener would spin. The kernel queues meanwhile.
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
      accepting = false;
      if (const auto n = refused_log.note(now_unix))
        spdlog::warn("socketmap event=accept-paused error={} times={} note=\"out of descriptors\"",
                     policy::logfmt_value(std::strerror(errno)), *n);
    }
    return;  // EAGAIN, or a connection that died in the queue
  }
}

void SocketmapServer::Impl::admit(int fd) {
  if (connections.size() >= config.max_connections && !evict_idle()) {
    ++n_refused;
    close(fd);
    if (const auto n = refused_log.note(now_unix))
      spdlog::warn(
          "socketmap event=connection-refused connections={} times={} note=\"max_connections, all busy\"",
          connections.size(), *n);
    return;
  }
  // Replies are small and each is one write: never wait for an ACK first.
  const int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // fails harmlessly on a unix socket
  const std::uint64_t id = next_id++;
  auto c = std::make_unique<Connection>(fd, id);
  c->events = EPOLLIN;
  epoll_event event{c->events, {.u64 = id}};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
    close(fd);
    return;
  }
  connections.emplace(id, std::move(c));
  ++n_connections;
}

// At the cap, the connection idle the longest (nothing in progress) makes
// room: an MTA reconnects on its next lookup, a flood of idle sockets cannot
// lock real clients out.
bool SocketmapServer::Impl::evict_idle() {
  Connection* oldest = nullptr;
  for (auto& [id, c] : connections)
    if (c->slots.empty() && (!oldest || c->last_activity < oldest->last_activity)) oldest = c.get();
  if (!oldest) return false;
  ++n_refused;  // counted before the close a client may see
  close_connection(oldest->id);
  if (const auto n = refused_log.note(now_unix))
    spdlog::warn("socketmap event=idle-connection-closed connections={} times={} note=\"max_connections\"",
                 connections.size(), *n);
  return true;
}

void SocketmapServer::Impl::on_readable(Connection& c) {
  const std::uint64_t id = c.id;
  char buffer[kReadChunk];
  const ssize_t got = recv(c.fd, buffer, sizeof buffer, 0);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (got <= 0) {  // end of stream or error: nothing more will be asked
    if ((c.slots.empty() && c.out.empty()) || got < 0) {
      close_connection(id);
      return;
    }
    c.closing = true;  // answer what was asked, then close
    update_events(c);
    return;
  }
  c.last_activity = Steady::now();
  c.reader.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
  process_frames(c);
  if (Connection* still = find(id)) flush(*still);
}

void SocketmapServer::Impl::process_frames(Connection& c) {
  while (!c.closing && c.slots.size() < kMaxRequestsInProgress) {
    request_started = Steady::now();  // a malformed frame's answer is timed too
    auto frame = c.reader.next();
    if (!frame) {
      ++n_malformed;
      if (const auto n = malformed_log.note(now_unix))
        spdlog::warn(
            "socketmap event=malformed-request error={} times={} note=\"answered PERM, connection closed\"",
            policy::to_string(frame.error()), *n);
      answer_now(c,
                 policy::make_reply(SocketmapStatus::Perm,
                                    "malformed netstring: " + std::string(policy::to_string(frame.error()))));
      c.closing = true;
      break;
    }
    if (!frame->has_value()) break;  // need more bytes
    handle_request(c, **frame);
  }
  update_events(c);
}

void SocketmapServer::Impl::handle_request(Connection& c, const std::string& payload) {
  ++n_requests;
  auto request = policy::parse_request(payload);
  if (!request) {
    answer_now(c, policy::make_reply(SocketmapStatus::Perm,
                                     "bad request: " + std::string(policy::to_string(request.error()))));
    return;
  }
  if (!map_names.contains(request->map_name)) {
    answer_now(c, policy::make_reply(SocketmapStatus::Perm, "unknown map name " + request->map_name));
    return;
  }
  std::string key = policy::ascii_lowercase(request->key);
  const bool plain = sendmail_maps.contains(request->map_name);
  if (const Answer* known = answers.find(key)) {
    if (now_unix < known->reuse_until) {
      ++n_warm;
      answer_now(c, known->for_map(plain));
      return;
    }
    if (now_unix < known->stale_until) {  // still good enough; refresh it behind the reply
      ++n_warm;
      answer_now(c, known->for_map(plain));
      if (!flights.contains(key) && start_lookup(key)) flights.emplace(std::move(key), std::vector<Waiter>{});
      return;
    }
  }
  wait_for_lookup(c, std::move(key), plain);
}

void SocketmapServer::Impl::answer_now(Connection& c, policy::SocketmapReply reply) {
  count_answer(reply.status, request_started);
  c.slots.push_back(Slot{c.next_seq++, true, std::move(reply.framed)});
}

// metrics: the answer's status as sent and the time from the request to its
// answer.
void SocketmapServer::Impl::count_answer(SocketmapStatus status, Steady::time_point asked) {
  if (!policy::metrics::enabled()) return;
  auto& m = policy::metrics::registry();
  m.socketmap_requests.add(policy::to_string(status));
  m.socketmap_seconds.observe(Steady::now() - asked);
}

void SocketmapServer::Impl::wait_for_lookup(Connection& c, std::string key, bool plain) {
  auto flight = flights.find(key);
  if (flight == flights.end()) {
    if (flights.size() >= config.max_waiting_keys || !start_lookup(key)) {
      if (const auto n = overloaded_log.note(now_unix))
        spdlog::warn("socketmap event=overloaded waiting_keys={} times={} note=\"answered TEMP\"",
                     flights.size(), *n);
      answer_now(c, policy::make_reply(SocketmapStatus::Temp, "MTA-STS lookups overloaded"));
      return;
    }
    flight = flights.emplace(key, std::vector<Waiter>{}).first;
  }
  const Waiter waiter{c.id, c.next_seq, Steady::now() + config.deadline, plain};
  c.slots.push_back(Slot{c.next_seq++, false, {}});
  flight->second.push_back(waiter);
  deadlines.push_back(waiter);
}

bool SocketmapServer::Impl::start_lookup(const std::string& key) {
  {
    const std::lock_guard lock(mu);
    if (stopping) return false;
    jobs.push_back(key);
  }
  ++n_lookups;
  jobs_changed.notify_one();
  return true;
}

void SocketmapServer::Impl::take_done() {
  std::vector<std::pair<std::string, SocketmapLookupResult>> finished;
  {
    const std::lock_guard lock(mu);
    finished.swap(done);
  }
  for (auto& [key, result] : finished) {
    Answer answer{policy::make_reply(result.answer.status, result.answer.text), std::nullopt,
                  result.reuse_until, std::max(result.reuse_until, result.stale_until)};
    if (result.without_attributes)
      answer.plain_reply =
          policy::make_reply(result.without_attributes->status, result.without_attributes->text);
    // The table first: a request for the same key read while the waiters'
    // replies are flushed finds the answer there.
    if (answer.reuse_until > now_unix)
      answers.put(key, answer);
    else
      answers.erase(key);
    const auto flight = flights.find(key);
    if (flight == flights.end()) continue;
    const std::vector<Waiter> waiters = std::move(flight->second);
    flights.erase(flight);
    answer_waiters(waiters, answer);
  }
}

void SocketmapServer::Impl::answer_waiters(const std::vector<Waiter>& waiters, const Answer& answer) {
  std::set<std::uint64_t> touched;
  for (const Waiter& w : waiters) {
    fill(w, answer.for_map(w.plain));
    touched.insert(w.connection);
  }
  for (const auto id : touched)
    if (Connection* c = find(id)) flush(*c);
}

void SocketmapServer::Impl::fill(const Waiter& w, const policy::SocketmapReply& reply) {
  Connection* c = find(w.connection);
  if (!c || c->slots.empty() || w.seq < c->slots.front().seq) return;  // gone, or already answered
  Slot& slot = c->slots[w.seq - c->slots.front().seq];
  if (slot.ready) return;  // answered TEMP at its deadline
  count_answer(reply.status, w.deadline - config.deadline);
  slot.ready = true;
  slot.reply = reply.framed;
}

void SocketmapServer::Impl::expire_deadlines(Steady::time_point now) {
  std::set<std::uint64_t> touched;
  while (!deadlines.empty() && deadlines.front().deadline <= now) {
    const Waiter w = deadlines.front();
    deadlines.pop_front();
    Connection* c = find(w.connection);
    if (!c || c->slots.empty() || w.seq < c->slots.front().seq) continue;
    if (c->slots[w.seq - c->slots.front().seq].ready) continue;
    ++n_temp_deadline;
    fill(w, policy::make_reply(SocketmapStatus::Temp, "MTA-STS lookup still running, try again"));
    touched.insert(w.connection);
  }
  for (const auto id : touched)
    if (Connection* c = find(id)) flush(*c);
}

// Moves ready replies (in order) to the output, writes what the socket
// takes, and goes on with requests read but held back while the client was
// behind, until nothing more is ready.
void SocketmapServer::Impl::flush(Connection& c) {
  for (;;) {
    while (!c.slots.empty() && c.slots.front().ready) {
      c.out += c.slots.front().reply;
      c.slots.pop_front();
    }
    if (!write_out(c)) {
      close_connection(c.id);
      return;
    }
    if (c.closing && c.out.empty() && c.slots.empty()) {
      close_connection(c.id);
      return;
    }
    const bool room = c.out.size() < kMaxUnreadReplyBytes && c.slots.size() < kMaxRequestsInProgress;
    if (c.closing || !room || c.reader.buffered_bytes() == 0) break;
    process_frames(c);
    if (c.slots.empty() || !c.slots.front().ready) break;
  }
  update_events(c);
}

// False when the connection is broken.
bool SocketmapServer::Impl::write_out(Connection& c) {
  while (c.out_sent < c.out.size()) {
    const ssize_t sent = send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (sent < 0) return errno == EAGAIN || errno == EINTR;
    c.out_sent += static_cast<std::size_t>(sent);
    c.last_activity = Steady::now();
  }
  c.out.clear();
  c.out_sent = 0;
  return true;
}

void SocketmapServer::Impl::update_events(Connection& c) {
  const bool behind =
      c.out.size() - c.out_sent >= kMaxUnreadReplyBytes || c.slots.size() >= kMaxRequestsInProgress;
  std::uint32_t wanted = 0;
  if (!c.closing && !behind) wanted |= EPOLLIN;
  if (c.out_sent < c.out.size()) wanted |= EPOLLOUT;
  if (wanted == c.events) return;
  c.events = wanted;
  epoll_event event{wanted, {.u64 = c.id}};
  epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &event);
}

void SocketmapServer::Impl::close_connection(std::uint64_t id) {
  const auto it = connections.find(id);
  if (it == connections.end()) return;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, it->second->fd, nullptr);
  close(it->second->fd);
  connections.erase(it);  // its waiters find no connection and are skipped
}

// Closes connections idle past the timeout: no request read and no reply
// taken for that long (a half-open peer, a client that stopped reading).
void SocketmapServer::Impl::sweep(Steady::time_point now) {
  next_sweep = now + kSweepInterval;
  if (!accepting) {
    epoll_event event{EPOLLIN, {.u64 = kListenId}};
    accepting = epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &event) == 0;
  }
  std::vector<std::uint64_t> idle;
  for (const auto& [id, c] : connections) {
    const bool waiting_for_us = !c->slots.empty() && !c->slots.front().ready;
    if (!waiting_for_us && now - c->last_activity >= config.idle_timeout) idle.push_back(id);
  }
  n_idle_closed += idle.size();  // counted first: a client may look as soon as it sees the close
  for (const auto id : idle) close_connection(id);
}

// Stopping: every request still waiting is told to try again (TEMP), one
// last write is tried, and every connection is closed.
void SocketmapServer::Impl::answer_everyone_stopping() {
  const std::string reply = policy::format_reply(SocketmapStatus::Temp, "MTA-STS server stopping");
  for (auto& [id, c] : connections) {
    for (auto& slot : c->slots)
      if (!slot.ready) {
        slot.ready = true;
        slot.reply = reply;
      }
    while (!c->slots.empty()) {
      c->out += c->slots.front().reply;
      c->slots.pop_front();
    }
    if (c->out_sent < c->out.size()) [[maybe_unused]]
      const auto sent = send(c->fd, c->out.data() + c->out_sent, c->out.size() - c->out_sent, MSG_NOSIGNAL);
    close(c->fd);
  }
  connections.clear();
}

SocketmapServerConfig socketmap_server_config(const Config& config) {
  SocketmapServerConfig out;
  out.map_names = config.socketmap.map_names;
  out.sendmail_map_names = config.socketmap.sendmail_map_names;
  out.deadline = std::chrono::milliseconds(config.socketmap.deadline_ms);
  out.max_connections = config.socketmap.max_connections;
  out.idle_timeout = std::chrono::seconds(config.socketmap.idle_timeout);
  out.lookup_threads = config.socketmap.lookup_threads;
  return out;
}

}  // namespace mtasts::milter
