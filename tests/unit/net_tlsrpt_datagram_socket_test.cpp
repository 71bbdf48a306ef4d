// DatagramForwarder / DatagramReceiver over real unix datagram sockets in a
// temporary folder: the bytes that leave are exactly encode_datagram's, the
// domains without a record send nothing, a missing collector costs nothing
// but a count, and what arrives reaches the sink or is rejected.
#include "policy/net/tlsrpt_datagram_socket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "fakes/recording_sink.h"
#include "policy/tlsrpt_datagram.h"

namespace mtasts::policy::net {
namespace {

using mtasts::testing::RecordingSink;

class TempSocketDir {
 public:
  TempSocketDir() {
    char pattern[] = "/tmp/dgram-test-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempSocketDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

int bound_datagram_socket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << path;
  return fd;
}

std::string receive(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 2000) != 1) return "<nothing>";
  std::string buffer(65536, '\0');
  const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
  buffer.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return buffer;
}

void send_to(const std::string& path, const std::string& bytes) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  EXPECT_EQ(sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&address), sizeof address),
            static_cast<ssize_t>(bytes.size()));
  close(fd);
}

TlsrptSession failure_for(const std::string& domain) {
  TlsrptSession s;
  s.at = 1'780'000'000;
  s.policy_type = "sts";
  s.policy_domain = domain;
  s.policy_string = "version: STSv1\r\nmode: enforce\r\nmx: mx." + domain + "\r\nmax_age: 86400\r\n";
  s.mx_patterns = "mx." + domain;
  s.result_type = ResultType::CertificateNotTrusted;
  s.failure_reason_code = "certificate-not-trusted";
  s.receiving_mx_hostname = "mx." + domain;
  s.receiving_ip = "127.0.0.9";
  return s;
}

TEST(NetTlsrptDatagramSocket, ForwarderSendsExactDatagramsOnlyForDomainsWithARecord) {
  TempSocketDir dir;
  const int collector = bound_datagram_socket(dir.file("collector"));
  RecordingSink inner;
  std::atomic<int> lookups{0};
  DatagramForwarderConfig config;
  config.socket_path = dir.file("collector");
  DatagramForwarder forwarder(&inner, config,
                              [&lookups](const std::string& domain) -> std::optional<std::string> {
                                ++lookups;
                                if (domain == "example.com")
                                  return "v=TLSRPTv1; rua=mailto:tlsrpt@example.com";
                                return std::nullopt;
                              });
  const TlsrptSession first = failure_for("example.com");
  TlsrptSession second = first;
  second.result_type = std::nullopt;
  second.success = true;
  forwarder.record(first);
  forwarder.record(failure_for("norecord.example"));
  forwarder.record(second);
  forwarder.wait_idle();

  EXPECT_EQ(receive(collector),
            encode_datagram(datagram_from_session(first, "v=TLSRPTv1; rua=mailto:tlsrpt@example.com")));
  EXPECT_EQ(receive(collector),
            R"({"dpv":"1","d":"example.com","pr":"v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[)"
            R"({"policy-type":2,"policy-domain":"example.com","policy-string":["version: STSv1",)"
            R"("mode: enforce","mx: mx.example.com","max_age: 86400"],"mx-host":["mx.example.com"],)"
            R"("t":0,"f":0}]})");
  EXPECT_EQ(inner.sessions().size(), 3u);  // every session still reaches our own counts
  EXPECT_EQ(lookups.load(), 2);            // one lookup per domain, then cached
  const auto counts = forwarder.counts();
  EXPECT_EQ(counts.sent, 2);
  EXPECT_EQ(counts.no_record, 1);
  EXPECT_EQ(counts.send_failed, 0);
  close(collector);
}

TEST(NetTlsrptDatagramSocket, MissingCollectorCostsOnlyACount) {
  TempSocketDir dir;
  RecordingSink inner;
  DatagramForwarderConfig config;
  config.socket_path = dir.file("nobody-listens");
  DatagramForwarder forwarder(&inner, config,
                              [](const std::string&) { return std::string("v=TLSRPTv1;rua=mailto:a@b.c"); });
  forwarder.record(failure_for("example.com"));
  forwarder.wait_idle();
  EXPECT_EQ(forwarder.counts().send_failed, 1);
  EXPECT_EQ(inner.sessions().size(), 1u);
}

TEST(NetTlsrptDatagramSocket, FullQueueDropsInsteadOfBlocking) {
  TempSocketDir dir;
  const int collector = bound_datagram_socket(dir.file("collector"));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  DatagramForwarderConfig config;
  config.socket_path = dir.file("collector");
  config.max_queued = 2;
  DatagramForwarder forwarder(nullptr, config, [released](const std::string&) {
    released.wait();  // the sender thread is stuck on a slow lookup
    return std::string("v=TLSRPTv1;rua=mailto:a@b.c");
  });
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) forwarder.record(failure_for("d" + std::to_string(i) + ".example"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
  release.set_value();
  forwarder.wait_idle();
  const auto counts = forwarder.counts();
  EXPECT_GE(counts.queue_full, 7);  // one taken by the thread, two queued, the rest dropped
  EXPECT_EQ(counts.sent + counts.queue_full, 10);
  close(collector);
}

// Fills `path`'s queue (whatever net.unix.max_dgram_qlen allows here) with
// datagrams sent without waiting; returns how many it took.
int fill_queue(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  int sent = 0;
  while (sendto(fd, "x", 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&address), sizeof address) == 1) ++sent;
  close(fd);
  return sent;
}

// A collector whose queue is full when a burst comes, and that reads 100 ms
// later, loses nothing of it: the sender thread waits for room.
TEST(NetTlsrptDatagramSocket, ABusyCollectorLosesNothingOfABurst) {
  TempSocketDir dir;
  const int collector = bound_datagram_socket(dir.file("collector"));
  const int queued = fill_queue(dir.file("collector"));
  DatagramForwarderConfig config;
  config.socket_path = dir.file("collector");
  DatagramForwarder forwarder(nullptr, config,
                              [](const std::string&) { return std::string("v=TLSRPTv1;rua=mailto:a@b.c"); });
  constexpr int kBurst = 200;
  for (int i = 0; i < kBurst; ++i) forwarder.record(failure_for("d" + std::to_string(i % 7) + ".example"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int received = 0;
  while (received < queued + kBurst && receive(collector) != "<nothing>") ++received;
  forwarder.wait_idle();
  EXPECT_EQ(received, queued + kBurst);
  EXPECT_EQ(forwarder.counts().sent, kBurst);
  EXPECT_EQ(forwarder.counts().send_failed, 0);
  close(collector);
}

// stop() (as the daemon's shutdown calls it) waits for no collector: a queue
// behind one that never reads is given up at once, not kCollectorWait per
// datagram.
TEST(NetTlsrptDatagramSocket, StoppingDoesNotWaitForAStuckCollector) {
  TempSocketDir dir;
  const int collector = bound_datagram_socket(dir.file("collector"));  // never read
  fill_queue(dir.file("collector"));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  DatagramForwarderConfig config;
  config.socket_path = dir.file("collector");
  DatagramForwarder forwarder(nullptr, config, [released](const std::string&) {
    released.wait();
    return std::string("v=TLSRPTv1;rua=mailto:a@b.c");
  });
  for (int i = 0; i < 100; ++i) forwarder.record(failure_for("example.com"));
  std::chrono::steady_clock::duration stop_took{};
  std::thread stopper([&] {
    const auto started = std::chrono::steady_clock::now();
    forwarder.stop();
    stop_took = std::chrono::steady_clock::now() - started;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // stop() has set stopping
  release.set_value();
  stopper.join();
  EXPECT_LT(stop_took, std::chrono::seconds(2)) << "100 datagrams x 250 ms would be 25 s";
  EXPECT_EQ(forwarder.counts().send_failed, 100);  // the first waited its 250 ms, the rest none
  close(collector);
}

TEST(NetTlsrptDatagramSocket, ReceiverRecordsGoodDatagramsAndRejectsBadOnes) {
  TempSocketDir dir;
  const std::string path = dir.file("tlsrpt.sock");
  RecordingSink sink;
  DatagramReceiver receiver(bound_datagram_socket(path), sink, [] { return std::int64_t{1'780'000'000}; });
  send_to(path, "{\"d\": \"example.com\"");  // cut short
  send_to(path,
          R"({"d": "example.com","pr": "v=TLSRPTv1; rua=mailto:r@example.com","policies":[{"policy-type":2,)"
          R"("policy-domain": "example.com","mx-host":["mx.example.com"],"failure-details":[{"c":201,)"
          R"("n": "mx.example.com"}],"t":1,"f":0}]})");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (receiver.counts().datagrams + receiver.counts().rejected < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto counts = receiver.counts();
  EXPECT_EQ(counts.rejected, 1);
  EXPECT_EQ(counts.datagrams, 1);
  EXPECT_EQ(counts.sessions, 2);
  const auto sessions = sink.sessions();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions[0].result_type, ResultType::StartTlsNotSupported);
  EXPECT_EQ(sessions[0].at, 1'780'000'000);
  EXPECT_TRUE(sessions[1].success);
}

}  // namespace
}  // namespace mtasts::policy::net
