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
#include <string>
#include <thread>
#include <vector>

#include "policy/socketmap.h"

namespace mtasts::milter {
namespace {

using namespace std::chrono_literals;
using policy::SocketmapStatus;

// The lookup the server calls: answers from a table; keys in `held` wait
// until release() (a slow discovery).
class FakeLookup {
 public:
  SocketmapLookupResult operator()(const std::string& key, policy::Deadline) {
    std::unique_lock lock(mu_);
    ++calls_;
    keys_.push_back(key);
    changed_.wait(lock, [&] { return !held_ || key.rfind("slow", 0) != 0; });
    if (key.rfind("temp", 0) == 0) return {{SocketmapStatus::Temp, "pending", "pending"}, 0, 0};
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
