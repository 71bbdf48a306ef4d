// The socketmap server's event loop against a fake lookup: order, waiting,
// deadlines, hostile clients and limits (milter/socketmap_server.h).
#include "milter/socketmap_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "policy/engine/metrics.h"
#include "policy/socketmap.h"

namespace mtasts::milter {
namespace {

using namespace std::chrono_literals;
using policy::SocketmapStatus;

// The lookup the server calls: answers by the key's first word; keys
// starting "slow" wait while held, until release() (a slow discovery).
class FakeLookup {
 public:
  SocketmapLookupResult operator()(const std::string& key, policy::Deadline) {
    std::unique_lock lock(mu_);
    ++calls_;
    keys_.push_back(key);
    changed_.wait(lock, [&] { return !held_ || key.rfind("slow", 0) != 0; });
    if (key.rfind("temp", 0) == 0) return {{SocketmapStatus::Temp, "pending", "pending"}, 0, 0};
    if (key.rfind("unsafe", 0) == 0)  // OK data the server cannot send
      return {{SocketmapStatus::Ok, "secure match=\x01", "enforce"}, 0, 0};
    if (key.rfind("none", 0) == 0)
      return {{SocketmapStatus::NotFound, "", "no-policy"}, now_ + 60, now_ + 120};
    return {{SocketmapStatus::Ok, "secure match=mx." + key + " servername=hostname", "enforce"},
            now_ + 60,
            now_ + 120};
  }
  void hold() {
    const std::lock_guard lock(mu_);
    held_ = true;
  }
  void release() {
    {
      const std::lock_guard lock(mu_);
      held_ = false;
    }
    changed_.notify_all();
  }
  int calls() {
    const std::lock_guard lock(mu_);
    return calls_;
  }
  std::atomic<std::int64_t> now_{1000};

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool held_ = false;
  int calls_ = 0;
  std::vector<std::string> keys_;
};

std::string ok_reply(const std::string& key) {
  return policy::format_reply(SocketmapStatus::Ok, "secure match=mx." + key + " servername=hostname");
}
const std::string kNotFound = "9:NOTFOUND ,";

// The answers counted (mtasts_socketmap_requests_total) by status word.
std::uint64_t answers_counted(SocketmapStatus status) {
  return policy::metrics::registry().socketmap_requests.value(policy::to_string(status));
}

// Answers timed at over a second (mtasts_socketmap_request_duration_seconds).
std::uint64_t answers_over_a_second() {
  std::string text;
  policy::metrics::registry().socketmap_seconds.write(text);
  std::istringstream lines(text);
  std::uint64_t within = 0, all = 0;
  for (std::string line; std::getline(lines, line);) {
    const std::string value = line.substr(line.rfind(' ') + 1);
    if (line.find("_bucket{le=\"1\"} ") != std::string::npos) within = std::stoull(value);
    if (line.find("_count ") != std::string::npos) all = std::stoull(value);
  }
  EXPECT_GT(all, 0u) << text;  // the histogram was read
  return all - within;
}

// Metrics on for one test (they are process-wide).
struct MetricsOn {
  MetricsOn() { policy::metrics::set_enabled(true); }
  ~MetricsOn() { policy::metrics::set_enabled(false); }
};

class SocketmapServerTest : public ::testing::Test {
 protected:
  void start(SocketmapServerConfig config = {}) {
    folder_ = std::filesystem::temp_directory_path() /
              ("smtest-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(folder_);
    path_ = (folder_ / "s").string();
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof un.sun_path, "%s", path_.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
    ASSERT_EQ(listen(fd, 4096), 0);
    server_ = std::make_unique<SocketmapServer>(
        fd, config, [this](const std::string& key, policy::Deadline d) { return lookup_(key, d); },
        [this] { return lookup_.now_.load(); });
    server_->start();
  }
  void TearDown() override {
    lookup_.release();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(folder_, ec);
  }
  int connect_client() const {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof un.sun_path, "%s", path_.c_str());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
    return fd;
  }
  static void send_all(int fd, const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }
  // Reads until `count` bytes arrived, the peer closed, or `wait` passed.
  static std::string read_bytes(int fd, std::size_t count, std::chrono::milliseconds wait = 3000ms) {
    std::string got;
    const auto until = std::chrono::steady_clock::now() + wait;
    while (got.size() < count) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buffer[4096];
      const ssize_t n = recv(fd, buffer, std::min(sizeof buffer, count - got.size()), 0);
      if (n <= 0) break;
      got.append(buffer, static_cast<std::size_t>(n));
    }
    return got;
  }
  // True when the server closed the connection within `wait`.
  static bool closed_by_server(int fd, std::chrono::milliseconds wait = 3000ms) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
    char c;
    return recv(fd, &c, 1, MSG_PEEK) == 0;
  }
  static std::string request(const std::string& map, const std::string& key) {
    return policy::encode_netstring(map + " " + key);
  }

  FakeLookup lookup_;
  std::unique_ptr<SocketmapServer> server_;
  std::filesystem::path folder_;
  std::string path_;
  static inline int counter_ = 0;
};

TEST_F(SocketmapServerTest, AnswersAndRemembersTheAnswer) {
  start();
  const int fd = connect_client();
  send_all(fd, request("postfix", "Example.COM"));
  EXPECT_EQ(read_bytes(fd, ok_reply("example.com").size()), ok_reply("example.com"));
  send_all(fd, request("sts", "example.com"));  // the second map name, the same answer
  EXPECT_EQ(read_bytes(fd, ok_reply("example.com").size()), ok_reply("example.com"));
  EXPECT_EQ(lookup_.calls(), 1);
  EXPECT_EQ(server_->counts().warm_answers, 1u);
  close(fd);
}

TEST_F(SocketmapServerTest, AStaleAnswerIsGivenWhileANewLookupRuns) {
  start();
  const int fd = connect_client();
  send_all(fd, request("postfix", "none.example"));
  EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  lookup_.now_ += 61;  // past reuse_until, before stale_until
  send_all(fd, request("postfix", "none.example"));
  EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  for (int i = 0; i < 100 && lookup_.calls() < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(lookup_.calls(), 2);
  std::this_thread::sleep_for(300ms);  // the refreshed answer reaches the table
  close(fd);
}

TEST_F(SocketmapServerTest, PastItsStaleLimitAnAnswerWaitsForANewLookup) {
  start();
  const int fd = connect_client();
  send_all(fd, request("postfix", "slow.example"));
  EXPECT_EQ(read_bytes(fd, ok_reply("slow.example").size()), ok_reply("slow.example"));
  lookup_.hold();
  lookup_.now_ += 200;  // past stale_until (reuse_until + 60)
  send_all(fd, request("postfix", "slow.example"));
  EXPECT_EQ(read_bytes(fd, 1, 300ms), "");  // not the old answer: it waits
  lookup_.release();
  EXPECT_EQ(read_bytes(fd, ok_reply("slow.example").size()), ok_reply("slow.example"));
  EXPECT_EQ(lookup_.calls(), 2);
  close(fd);
}

TEST_F(SocketmapServerTest, PipelinedRepliesKeepRequestOrderAcrossASlowLookup) {
  start();
  lookup_.hold();
  const int fd = connect_client();
  send_all(fd, request("postfix", "slow.example") + request("postfix", "none.example") +
                   request("other", "x.example"));
  const std::string expected = ok_reply("slow.example") + kNotFound +
                               policy::format_reply(SocketmapStatus::Perm, "unknown map name other");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(read_bytes(fd, 1, 100ms), "");  // the first reply is not ready: nothing may overtake it
  lookup_.release();
  EXPECT_EQ(read_bytes(fd, expected.size()), expected);
  close(fd);
}

TEST_F(SocketmapServerTest, ConcurrentMissesForOneKeyShareOneLookup) {
  start();
  lookup_.hold();
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    fds.push_back(connect_client());
    send_all(fds.back(), request("postfix", "slow.shared"));
  }
  std::this_thread::sleep_for(100ms);
  lookup_.release();
  for (const int fd : fds) {
    EXPECT_EQ(read_bytes(fd, ok_reply("slow.shared").size()), ok_reply("slow.shared"));
    close(fd);
  }
  EXPECT_EQ(lookup_.calls(), 1);
}

TEST_F(SocketmapServerTest, ALookupPastTheDeadlineIsAnsweredTempAndFillsTheTableForTheRetry) {
  SocketmapServerConfig config;
  config.deadline = 200ms;
  start(config);
  lookup_.hold();
  const int fd = connect_client();
  send_all(fd, request("postfix", "slow.example"));
  const std::string temp =
      policy::format_reply(SocketmapStatus::Temp, "MTA-STS lookup still running, try again");
  EXPECT_EQ(read_bytes(fd, temp.size()), temp);
  EXPECT_EQ(server_->counts().temp_deadline, 1u);
  lookup_.release();
  std::this_thread::sleep_for(100ms);
  send_all(fd, request("postfix", "slow.example"));
  EXPECT_EQ(read_bytes(fd, ok_reply("slow.example").size()), ok_reply("slow.example"));
  EXPECT_EQ(lookup_.calls(), 1);
  close(fd);
}

TEST_F(SocketmapServerTest, AFullTableForgetsOnlyTheAnswerUsedTheLongestAgo) {
  SocketmapServerConfig config;
  config.max_answers = 2;
  start(config);
  const int fd = connect_client();
  const auto ask = [&](const std::string& key) {
    send_all(fd, request("postfix", key));
    EXPECT_EQ(read_bytes(fd, ok_reply(key).size()), ok_reply(key)) << key;
  };
  ask("one.example");
  ask("two.example");
  ask("one.example");    // warm: now used after two
  ask("three.example");  // the table is full: two goes, one stays
  EXPECT_EQ(lookup_.calls(), 3);
  ask("one.example");
  ask("three.example");
  EXPECT_EQ(lookup_.calls(), 3);  // both still warm
  ask("two.example");
  EXPECT_EQ(lookup_.calls(), 4);
  EXPECT_EQ(server_->counts().warm_answers, 3u);
  close(fd);
}

TEST_F(SocketmapServerTest, ForgetAnswersSendsTheNextRequestToALookup) {
  start();
  const int fd = connect_client();
  for (int i = 0; i < 2; ++i) {
    send_all(fd, request("postfix", "none.example"));
    EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  }
  EXPECT_EQ(lookup_.calls(), 1);
  server_->forget_answers();
  send_all(fd, request("postfix", "none.example"));
  EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  EXPECT_EQ(lookup_.calls(), 2);
  close(fd);
}

// The daemon stops the server before it stops its reload thread, which may
// call forget_answers() meanwhile (a race TSan reports on the wake
// descriptor if stop() closes it).
TEST_F(SocketmapServerTest, ForgetAnswersMayRunWhileTheServerStops) {
  start();
  std::atomic<bool> stopped{false};
  std::thread reload([&] {
    for (int after_stop = 0; after_stop < 100;) {
      server_->forget_answers();
      if (stopped) ++after_stop;
    }
  });
  std::this_thread::sleep_for(10ms);
  server_->stop();
  stopped = true;
  reload.join();
}

// metrics: every answer counted once by the status the client reads, the
// warm ones too, and OK data that cannot be sent as the TEMP it becomes.
TEST_F(SocketmapServerTest, AnswersAreCountedByTheStatusSent) {
  const MetricsOn metrics;
  start();
  const auto ok = answers_counted(SocketmapStatus::Ok);
  const auto not_found = answers_counted(SocketmapStatus::NotFound);
  const auto temp = answers_counted(SocketmapStatus::Temp);
  const auto perm = answers_counted(SocketmapStatus::Perm);
  const int fd = connect_client();
  const std::string unsafe = policy::format_reply(SocketmapStatus::Temp, "unsafe or oversized reply data");
  const std::string pending = policy::format_reply(SocketmapStatus::Temp, "pending");
  const std::string unknown = policy::format_reply(SocketmapStatus::Perm, "unknown map name other");
  send_all(fd, request("postfix", "a.example"));
  EXPECT_EQ(read_bytes(fd, ok_reply("a.example").size()), ok_reply("a.example"));
  send_all(fd, request("postfix", "a.example") + request("postfix", "none.example") +
                   request("postfix", "unsafe.example") + request("postfix", "temp.example") +
                   request("other", "a.example"));
  const std::string expected = ok_reply("a.example") + kNotFound + unsafe + pending + unknown;
  EXPECT_EQ(read_bytes(fd, expected.size()), expected);
  EXPECT_EQ(answers_counted(SocketmapStatus::Ok) - ok, 2u);
  EXPECT_EQ(answers_counted(SocketmapStatus::NotFound) - not_found, 1u);
  EXPECT_EQ(answers_counted(SocketmapStatus::Temp) - temp, 2u);
  EXPECT_EQ(answers_counted(SocketmapStatus::Perm) - perm, 1u);
  close(fd);
}

// A malformed frame's PERM is timed from its own arrival, not from the last
// well-formed request (on whichever connection that was).
TEST_F(SocketmapServerTest, AMalformedFrameIsTimedFromItsOwnArrival) {
  const MetricsOn metrics;
  start();
  const int before = connect_client();
  send_all(before, request("postfix", "none.example"));
  EXPECT_EQ(read_bytes(before, kNotFound.size()), kNotFound);
  std::this_thread::sleep_for(1100ms);
  const auto slow = answers_over_a_second();
  const int fd = connect_client();
  send_all(fd, "hello\r\n");
  const std::string perm =
      policy::format_reply(SocketmapStatus::Perm, "malformed netstring: bad-length-digit");
  EXPECT_EQ(read_bytes(fd, perm.size()), perm);
  EXPECT_EQ(answers_over_a_second(), slow);
  close(fd);
  close(before);
}

TEST_F(SocketmapServerTest, TempAnswersAreNotRemembered) {
  start();
  const int fd = connect_client();
  const std::string temp = policy::format_reply(SocketmapStatus::Temp, "pending");
  for (int i = 0; i < 2; ++i) {
    send_all(fd, request("postfix", "temp.example"));
    EXPECT_EQ(read_bytes(fd, temp.size()), temp);
  }
  EXPECT_EQ(lookup_.calls(), 2);
  close(fd);
}

struct HostileCase {
  std::string name;
  std::string bytes;
  std::string reply;  // PERM text
};

TEST_F(SocketmapServerTest, MalformedNetstringsGetPermAndTheConnectionIsClosed) {
  start();
  const std::vector<HostileCase> cases = {
      {"garbage", "hello\r\n", "malformed netstring: bad-length-digit"},
      {"negative length", "-5:abcde,", "malformed netstring: bad-length-digit"},
      {"leading zero", "012:postfix a.b,", "malformed netstring: leading-zero"},
      {"oversized", "10001:", "malformed netstring: too-long"},
      {"huge", "99999999999999999999:", "malformed netstring: too-long"},
      {"no comma", "9:postfix a;", "malformed netstring: missing-comma"},
  };
  for (const auto& c : cases) {
    const int fd = connect_client();
    send_all(fd, c.bytes);
    const std::string expected = policy::format_reply(SocketmapStatus::Perm, c.reply);
    EXPECT_EQ(read_bytes(fd, expected.size()), expected) << c.name;
    EXPECT_TRUE(closed_by_server(fd)) << c.name;
    close(fd);
  }
  EXPECT_EQ(server_->counts().malformed, cases.size());
  // The server still answers.
  const int fd = connect_client();
  send_all(fd, request("postfix", "none.after"));
  EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  close(fd);
}

TEST_F(SocketmapServerTest, ABadRequestGetsPermAndTheConnectionStays) {
  start();
  const int fd = connect_client();
  send_all(fd, policy::encode_netstring("postfix") + policy::encode_netstring("postfix bad\x01key") +
                   request("unknown", "a.example") + request("postfix", "none.example"));
  const std::string expected = policy::format_reply(SocketmapStatus::Perm, "bad request: no-space") +
                               policy::format_reply(SocketmapStatus::Perm, "bad request: bad-key-byte") +
                               policy::format_reply(SocketmapStatus::Perm, "unknown map name unknown") +
                               kNotFound;
  EXPECT_EQ(read_bytes(fd, expected.size()), expected);
  close(fd);
}

TEST_F(SocketmapServerTest, BytesSplitAnywhereStillMakeOneRequest) {
  start();
  const int fd = connect_client();
  const std::string bytes = request("postfix", "none.split");
  for (const char c : bytes) {
    send_all(fd, std::string(1, c));
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  close(fd);
}

TEST_F(SocketmapServerTest, IdleAndHalfOpenConnectionsAreClosedAfterTheIdleTimeout) {
  SocketmapServerConfig config;
  config.idle_timeout = 1s;
  start(config);
  const int idle = connect_client();
  const int half = connect_client();
  send_all(half, "12:postfix");  // half a request, then silence
  EXPECT_TRUE(closed_by_server(idle, 4000ms));
  EXPECT_TRUE(closed_by_server(half, 4000ms));
  EXPECT_GE(server_->counts().idle_closed, 2u);
  close(idle);
  close(half);
}

TEST_F(SocketmapServerTest, AtTheCapTheLongestIdleConnectionMakesRoom) {
  SocketmapServerConfig config;
  config.max_connections = 50;
  start(config);
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(connect_client());
  std::this_thread::sleep_for(200ms);
  const int fd = connect_client();
  send_all(fd, request("postfix", "none.capped"));
  EXPECT_EQ(read_bytes(fd, kNotFound.size()), kNotFound);
  EXPECT_TRUE(closed_by_server(idle.front(), 1000ms));
  EXPECT_GE(server_->counts().refused, 1u);
  for (const int i : idle) close(i);
  close(fd);
}

TEST_F(SocketmapServerTest, AClientThatNeverReadsDoesNotHoldUpOthers) {
  start();
  const int greedy = connect_client();
  int size = 4096;
  setsockopt(greedy, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  std::thread flood([&] {
    std::string batch;
    for (int i = 0; i < 2000; ++i) batch += request("postfix", "flood.example");
    for (int round = 0; round < 50; ++round) {
      pollfd p{greedy, POLLOUT, 0};
      if (poll(&p, 1, 50) <= 0) break;  // the server stopped reading us
      send(greedy, batch.data(), batch.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  });
  const int polite = connect_client();
  for (int i = 0; i < 20; ++i) {
    send_all(polite, request("postfix", "none.polite"));
    ASSERT_EQ(read_bytes(polite, kNotFound.size(), 1000ms), kNotFound) << i;
  }
  flood.join();
  close(greedy);
  close(polite);
}

TEST_F(SocketmapServerTest, StopAnswersWaitingRequestsTemp) {
  start();
  lookup_.hold();
  const int fd = connect_client();
  send_all(fd, request("postfix", "slow.stop"));
  std::this_thread::sleep_for(100ms);
  std::thread stopper([&] { server_->stop(); });
  const std::string temp = policy::format_reply(SocketmapStatus::Temp, "MTA-STS server stopping");
  EXPECT_EQ(read_bytes(fd, temp.size()), temp);
  lookup_.release();
  stopper.join();
  close(fd);
}

}  // namespace
}  // namespace mtasts::milter
