// libtlsrpt datagrams over unix datagram sockets; see the header.
#include "policy/net/tlsrpt_datagram_socket.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "policy/log_throttle.h"
#include "policy/logfmt.h"
#include "policy/tlsrpt_datagram.h"

namespace mtasts::policy::net {
namespace {

constexpr std::int64_t kLogEverySeconds = 60;
constexpr int kPollMs = 200;  // how soon the receiver sees a stop

std::int64_t steady_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// ---- forwarder ----

struct DatagramForwarder::Impl {
  struct CachedRecord {
    std::optional<std::string> text;
    std::chrono::steady_clock::time_point expires;
  };

  TlsrptSink* next;
  DatagramForwarderConfig config;
  RecordFinder find_record;
  sockaddr_un address{};
  int fd = -1;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::condition_variable idle;
  std::deque<TlsrptSession> queue;
  bool busy = false;
  bool stopping = false;
  DatagramForwarderCounts counts;
  LogThrottle full_log{kLogEverySeconds};

  // The sender thread's own (no lock).
  std::unordered_map<std::string, CachedRecord> records;
  LogThrottle send_log{kLogEverySeconds};
  std::thread sender;

  const std::optional<std::string>& record_of(const std::string& domain) {
    const auto now = std::chrono::steady_clock::now();
    auto it = records.find(domain);
    if (it != records.end() && it->second.expires > now) return it->second.text;
    if (records.size() >= config.max_cached_records) records.clear();  // rare: bounded, then refilled
    CachedRecord fresh{find_record(domain), now + config.record_ttl};
    return records.insert_or_assign(domain, std::move(fresh)).first->second.text;
  }

  // `hurry`: stopping, so no wait for room at a busy collector.
  bool record_known(const std::string& domain) const {
    const auto it = records.find(domain);
    return it != records.end() && it->second.expires > std::chrono::steady_clock::now();
  }

  void send(const TlsrptSession& session, bool hurry) {
    if (hurry && !record_known(session.policy_domain)) {  // stopping: no DNS lookup either
      std::lock_guard lock(mu);
      ++counts.send_failed;
      return;
    }
    const std::optional<std::string>& record = record_of(session.policy_domain);
    if (!record) {
      std::lock_guard lock(mu);
      ++counts.no_record;
      return;
    }
    const std::string bytes = encode_datagram(datagram_from_session(session, *record));
    // Blocking, up to kCollectorWait (SO_SNDTIMEO): this thread is not the
    // mail path, and a collector's queue holds only net.unix.max_dgram_qlen
    // datagrams (10 on some hosts), so a burst would otherwise be dropped.
    const ssize_t sent = sendto(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | (hurry ? MSG_DONTWAIT : 0),
                                reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int error = errno;
    std::lock_guard lock(mu);
    if (sent == static_cast<ssize_t>(bytes.size())) {
      ++counts.sent;
      return;
    }
    ++counts.send_failed;
    if (const auto events = send_log.note(steady_seconds()))
      spdlog::warn("tlsrpt-datagram event=send-failed socket={} datagrams={} error={}",
                   logfmt_value(config.socket_path), *events, logfmt_value(std::strerror(error)));
  }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      wake.wait(lock, [this] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping, and everything was sent
      TlsrptSession session = std::move(queue.front());
      queue.pop_front();
      busy = true;
      const bool hurry = stopping;
      lock.unlock();
      send(session, hurry);
      lock.lock();
      busy = false;
      if (queue.empty()) idle.notify_all();
    }
  }
};

DatagramForwarder::DatagramForwarder(TlsrptSink* next, DatagramForwarderConfig config,
                                     RecordFinder find_record)
    : impl_(std::make_unique<Impl>()) {
  impl_->next = next;
  impl_->config = std::move(config);
  impl_->find_record = std::move(find_record);
  impl_->address.sun_family = AF_UNIX;
  const std::string& path = impl_->config.socket_path;
  if (path.empty() || path.size() >= sizeof impl_->address.sun_path)
    throw std::runtime_error("the TLSRPT datagram socket path '" + path + "' is empty or too long");
  std::memcpy(impl_->address.sun_path, path.c_str(), path.size() + 1);
  impl_->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (impl_->fd < 0) throw std::runtime_error("cannot create a unix datagram socket");
  static_assert(kCollectorWait < std::chrono::seconds(1), "timeval below: microseconds only");
  const timeval wait{0, static_cast<suseconds_t>(
                            std::chrono::duration_cast<std::chrono::microseconds>(kCollectorWait).count())};
  if (setsockopt(impl_->fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait) != 0) {
    close(impl_->fd);
    throw std::runtime_error("cannot set a send timeout on the TLSRPT datagram socket");
  }
  impl_->sender = std::thread([impl = impl_.get()] { impl->run(); });
}

DatagramForwarder::~DatagramForwarder() {
  stop();
  close(impl_->fd);
}

void DatagramForwarder::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->sender.joinable()) impl_->sender.join();
}

void DatagramForwarder::record(const TlsrptSession& session) {
  if (impl_->next) impl_->next->record(session);
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->queue.size() >= impl_->config.max_queued) {
      ++impl_->counts.queue_full;
      if (const auto events = impl_->full_log.note(steady_seconds()))
        spdlog::warn("tlsrpt-datagram event=dropped reason=queue-full datagrams={} max_queued={}", *events,
                     impl_->config.max_queued);
      return;
    }
    impl_->queue.push_back(session);
  }
  impl_->wake.notify_one();
}

void DatagramForwarder::wait_idle() {
  std::unique_lock lock(impl_->mu);
  impl_->idle.wait(lock, [this] { return impl_->queue.empty() && !impl_->busy; });
}

DatagramForwarderCounts DatagramForwarder::counts() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counts;
}

// ---- receiver ----

struct DatagramReceiver::Impl {
  int fd = -1;
  TlsrptSink* sink = nullptr;
  Clock now;
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> datagrams{0}, rejected{0}, sessions{0};
  LogThrottle reject_log{kLogEverySeconds};  // the receiver thread's own
  std::unique_ptr<char[]> buffer;            // buffer_size bytes
  std::size_t buffer_size = 0;
  std::thread thread;

  void handle(std::string_view bytes, bool truncated) {
    if (truncated) {
      reject(bytes.size(), "", "larger than " + std::to_string(buffer_size - 1) + " bytes");
      return;
    }
    auto datagram = decode_datagram(bytes);
    if (!datagram) {
      reject(bytes.size(), datagram.error().path, datagram.error().detail);
      return;
    }
    ++datagrams;
    for (const TlsrptSession& session : sessions_from_datagram(*datagram, now())) {
      sink->record(session);
      ++sessions;
    }
  }

  void reject(std::size_t size, const std::string& path, const std::string& detail) {
    ++rejected;
    if (const auto events = reject_log.note(steady_seconds()))
      spdlog::warn("tlsrpt-datagram event=rejected datagrams={} bytes={} path={} detail={}", *events, size,
                   logfmt_value(path), logfmt_value(detail));
  }

  void run() {
    while (!stopping.load()) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, kPollMs) <= 0) continue;
      // One byte more than the largest datagram we take: MSG_TRUNC then says
      // "too large" instead of a cut JSON text.
      const ssize_t n = recv(fd, buffer.get(), buffer_size, MSG_DONTWAIT | MSG_TRUNC);
      if (n < 0) continue;  // EAGAIN after a spurious wake-up
      const bool truncated = static_cast<std::size_t>(n) >= buffer_size;
      handle(std::string_view(buffer.get(), std::min(static_cast<std::size_t>(n), buffer_size)), truncated);
    }
  }
};

DatagramReceiver::DatagramReceiver(int fd, TlsrptSink& sink, Clock now) : impl_(std::make_unique<Impl>()) {
  impl_->fd = fd;
  impl_->sink = &sink;
  impl_->now = std::move(now);
  // Collectors take datagrams up to 16 MiB (REFERENCE.md). The buffer is
  // left uninitialised: only pages a datagram touches become resident.
  impl_->buffer_size = kMaxDatagramBytes + 1;
  impl_->buffer.reset(new char[impl_->buffer_size]);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

DatagramReceiver::~DatagramReceiver() {
  impl_->stopping = true;
  impl_->thread.join();
  close(impl_->fd);
}

DatagramReceiverCounts DatagramReceiver::counts() const {
  return {impl_->datagrams.load(), impl_->rejected.load(), impl_->sessions.load()};
}

}  // namespace mtasts::policy::net
