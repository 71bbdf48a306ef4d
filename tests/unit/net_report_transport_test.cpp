// Report delivery, RFC 8460 §5.3 / §5.4 (policy/net/report_transport.h).
// Hermetic: MailSubmitter runs fake "sendmail" shell scripts written to a
// temporary folder; HttpsReportPoster posts to tests/integration/lib/
// https_sink.py on 127.0.0.1 with a test CA and leaf made at run time with
// the openssl command line. The sink prints its port; nothing else runs.
#include "policy/net/report_transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace mtasts::policy::net {

void PrintTo(DeliveryOutcome outcome, std::ostream* os) {
  static const char* const kNames[] = {"Delivered", "Temporary", "Permanent"};
  *os << kNames[static_cast<int>(outcome)];
}

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
constexpr auto kDelivered = DeliveryOutcome::Delivered;
constexpr auto kTemporary = DeliveryOutcome::Temporary;
constexpr auto kPermanent = DeliveryOutcome::Permanent;

fs::path make_temp_dir(const std::string& prefix) {
  std::string name = (fs::temp_directory_path() / (prefix + ".XXXXXX")).string();
  if (mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return name;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Bytes no text filter would pass unchanged: NUL, CR, 0x80-0xff.
std::string binary_bytes(std::size_t size) {
  std::string bytes(size, '\0');
  unsigned state = 12345;
  for (auto& byte : bytes) {
    state = state * 1103515245u + 12345u;
    byte = static_cast<char>(state >> 16);
  }
  return bytes;
}

bool process_gone(pid_t pid) {  // absent, or a zombie nobody reaped yet
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close_paren = stat.rfind(')');
  return stat.empty() || (close_paren != std::string::npos && stat.substr(close_paren + 2, 1) == "Z");
}

// ---- MailSubmitter ---------------------------------------------------------

class MailSubmitterTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("report_transport_mail"); }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // A fake sendmail: `body` after "#!/bin/sh"; "@DIR@" stands for the folder.
  fs::path script(const std::string& name, std::string body) const {
    for (auto at = body.find("@DIR@"); at != std::string::npos; at = body.find("@DIR@"))
      body.replace(at, 5, dir_.string());
    fs::path path = dir_ / name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(path, fs::perms::owner_all);
    return path;
  }

  MailSubmitter submitter(const fs::path& program, milliseconds timeout = milliseconds(5000)) const {
    MailSubmitConfig config;
    config.argv_prefix = {program.string(), "-oi"};
    config.timeout = timeout;
    return MailSubmitter(config);
  }

  fs::path dir_;
};

const std::string kFrom = "tlsrpt-noreply@sender.example";
const std::string kRcpt = "tlsrpt@receiver.example";
const std::string kSmallMessage = "Subject: Report\r\n\r\nbody\r\n";

TEST_F(MailSubmitterTest, DeliversTheExactBytesWithTheExactArgv) {
  const auto program = script("sendmail",
                              "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > @DIR@/argv\n"
                              "cat > @DIR@/stdin\n"
                              "exit 0");
  const std::string message =
      "From: tlsrpt-noreply@sender.example\r\nTo: tlsrpt@receiver.example\r\n"
      "Subject: Report Domain: receiver.example\r\n\r\n" +
      binary_bytes(std::size_t{300} * 1024);  // more than one socket buffer
  const auto result = submitter(program).submit(kFrom, kRcpt, message);
  EXPECT_EQ(result.outcome, kDelivered) << result.detail;
  EXPECT_EQ(result.detail, "sendmail exit 0");
  EXPECT_EQ(read_file(dir_ / "argv"), "-oi\n-f\n" + kFrom + "\n--\n" + kRcpt + "\n");
  EXPECT_TRUE(read_file(dir_ / "stdin") == message) << "stdin differs from the message";
}

TEST_F(MailSubmitterTest, NullSenderIsPassedAsIs) {
  const auto program = script("sendmail", "printf '%s\\n' \"$3\" > @DIR@/from; cat >/dev/null");
  EXPECT_EQ(submitter(program).submit("<>", kRcpt, kSmallMessage).outcome, kDelivered);
  EXPECT_EQ(read_file(dir_ / "from"), "<>\n");
}

// The daemon blocks SIGTERM & co. in every thread and ignores or blocks
// SIGPIPE; none of it, no variable and no descriptor may reach sendmail.
TEST_F(MailSubmitterTest, ChildGetsACleanEnvironmentSignalsAndDescriptors) {
  const auto program = script("sendmail",
                              // First, and with builtins only: dash empties its signal
                              // mask once it has waited for a child.
                              "while IFS= read -r l; do case $l in Sig[BI]*) echo \"$l\";; esac; done"
                              " < /proc/$$/status > @DIR@/signals\n"
                              "tr '\\0' '\\n' < /proc/$$/environ > @DIR@/env\n"
                              "ls -l /proc/$$/fd/ > @DIR@/fds\n"
                              "cat >/dev/null");
  setenv("REPORT_TRANSPORT_TEST_SECRET", "leaked", 1);
  const int leaked = open((dir_ / "leak-marker").c_str(), O_CREAT | O_WRONLY, 0600);  // no O_CLOEXEC
  ASSERT_GE(leaked, 0);
  sigset_t blocked, previous;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGHUP);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &blocked, &previous), 0);
  const auto old_pipe = signal(SIGPIPE, SIG_IGN);
  const auto result = submitter(program).submit(kFrom, kRcpt, kSmallMessage);
  signal(SIGPIPE, old_pipe);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  close(leaked);
  unsetenv("REPORT_TRANSPORT_TEST_SECRET");
  EXPECT_EQ(result.outcome, kDelivered) << result.detail;
  EXPECT_EQ(read_file(dir_ / "env"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n");
  // glibc's posix_spawn leaves its two internal signals (32, 33) ignored;
  // the standard signals must all be default and unblocked.
  const std::string status = read_file(dir_ / "signals");
  std::istringstream signals(status);
  std::string blk_name, ign_name;
  unsigned long long blk = ~0ull, ign = ~0ull;
  signals >> blk_name >> std::hex >> blk >> ign_name >> ign;
  EXPECT_EQ(blk_name, "SigBlk:");
  EXPECT_EQ(blk, 0u) << status;
  EXPECT_EQ(ign_name, "SigIgn:");
  EXPECT_EQ(ign & 0x7fffffffull, 0u) << status;
  const std::string fds = read_file(dir_ / "fds");
  EXPECT_EQ(fds.find("leak-marker"), std::string::npos) << fds;
}

struct ExitCase {
  std::string name;
  std::string body;
  DeliveryOutcome outcome;
  std::string detail;  // expected exactly, or as a prefix when it ends in "*"
};

TEST_F(MailSubmitterTest, ExitStatusDecidesTheOutcome) {
  const std::string long_output = "i=0; while [ $i -lt 100 ]; do echo 0123456789; i=$((i+1)); done; exit 75";
  const std::vector<ExitCase> cases = {
      {"read and 0", "cat >/dev/null; exit 0", kDelivered, "sendmail exit 0"},
      {"EX_TEMPFAIL", "exit 75", kTemporary, "sendmail exit 75"},
      {"EX_USAGE", "exit 64", kPermanent, "sendmail exit 64"},
      {"EX_NOUSER", "exit 67", kPermanent, "sendmail exit 67"},
      {"EX_CONFIG", "exit 78", kTemporary, "sendmail exit 78"},
      {"EX_IOERR: a local fault", "exit 74", kTemporary, "sendmail exit 74"},
      {"EX_NOHOST", "exit 68", kPermanent, "sendmail exit 68"},
      {"not sysexits 1", "exit 1", kTemporary, "sendmail exit 1"},
      {"not sysexits 63", "exit 63", kTemporary, "sendmail exit 63"},
      {"not sysexits 79", "exit 79", kTemporary, "sendmail exit 79"},
      {"signal", "kill -TERM $$", kTemporary, "sendmail killed by signal 15"},
      {"words on stderr", "echo 'queue file write error' >&2; echo 'try later'; exit 75", kTemporary,
       "sendmail exit 75: queue file write error try later"},
      {"control bytes", "printf 'a\\033[2Jb\\001\\n'; exit 69", kTemporary, "sendmail exit 69: a?[2Jb?"},
      {"long output", long_output, kTemporary, "sendmail exit 75: 0123456789 0123456789 *"},
  };
  for (const auto& c : cases) {
    const auto result = submitter(script("sendmail", c.body)).submit(kFrom, kRcpt, kSmallMessage);
    EXPECT_EQ(result.outcome, c.outcome) << c.name << ": " << result.detail;
    if (c.detail.ends_with('*')) {
      EXPECT_TRUE(result.detail.starts_with(c.detail.substr(0, c.detail.size() - 1)))
          << c.name << ": " << result.detail;
    } else {
      EXPECT_EQ(result.detail, c.detail) << c.name;
    }
    EXPECT_LE(result.detail.size(), 600u) << c.name;
  }
}

// 4 MiB against a child that never reads: EPIPE (never SIGPIPE, whose
// default action would end this test), and the exit status decides; exit
// 0 is not believed for a message that was cut.
TEST_F(MailSubmitterTest, ChildThatDoesNotReadStdinDoesNotHurt) {
  const auto old_pipe = signal(SIGPIPE, SIG_DFL);
  const std::string message(std::size_t{4} * 1024 * 1024, 'x');
  const std::vector<ExitCase> cases = {
      {"75", "exit 75", kTemporary, "sendmail exit 75"},
      {"67", "exit 67", kPermanent, "sendmail exit 67"},
      {"0", "exit 0", kTemporary, "sendmail exit 0 before reading the whole message"},
      {"0 after a part", "head -c 1000 >/dev/null; exit 0", kTemporary,
       "sendmail exit 0 before reading the whole message"},
  };
  for (const auto& c : cases) {
    const auto result = submitter(script("sendmail", c.body)).submit(kFrom, kRcpt, message);
    EXPECT_EQ(result.outcome, c.outcome) << c.name << ": " << result.detail;
    EXPECT_EQ(result.detail, c.detail) << c.name;
  }
  signal(SIGPIPE, old_pipe);
}

TEST_F(MailSubmitterTest, TimeoutKillsTheWholeProcessGroup) {
  const auto program = script("sendmail",
                              "echo $$ > @DIR@/pid\n"
                              "sleep 30 &\n"
                              "echo $! > @DIR@/helper\n"
                              "wait");
  const auto started = Clock::now();
  const auto result = submitter(program, milliseconds(300)).submit(kFrom, kRcpt, kSmallMessage);
  const auto elapsed = Clock::now() - started;
  EXPECT_EQ(result.outcome, kTemporary);
  EXPECT_EQ(result.detail, "sendmail timed out after 300 ms, killed");
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(2000));
  const pid_t pid = std::atoi(read_file(dir_ / "pid").c_str());
  const pid_t helper = std::atoi(read_file(dir_ / "helper").c_str());
  ASSERT_GT(pid, 0);
  ASSERT_GT(helper, 0);
  EXPECT_EQ(kill(pid, 0), -1) << "the child was not reaped";
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1) << "the child was left to reap";
  for (int i = 0; i < 100 && !process_gone(helper); ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(process_gone(helper)) << "sendmail's helper survived the timeout";
}

TEST_F(MailSubmitterTest, UnsafeAddressesNeverReachTheCommand) {
  const auto program = script("sendmail", "touch @DIR@/ran");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {kFrom, "-oQ/tmp"},
      {kFrom, "-t"},
      {"-oQ/tmp", kRcpt},
      {kFrom, ""},
      {"", kRcpt},
      {"a b@sender.example", kRcpt},
      {kFrom, "tlsrpt@receiver.example\r\nBcc: x@y.example"},
      {kFrom, "tlsrpt@receiver.example\n"},
      {kFrom, "tls\trpt@receiver.example"},
      {kFrom, std::string("tlsrpt@receiver.example\0x", 25)},
      {kFrom, "tlsrpt@receiver.example\x7f"},
  };
  for (const auto& [from, rcpt] : cases) {
    const auto result = submitter(program).submit(from, rcpt, kSmallMessage);
    EXPECT_EQ(result.outcome, kPermanent) << from << " / " << rcpt;
    EXPECT_TRUE(result.detail.starts_with("sendmail not run: unsafe")) << result.detail;
  }
  EXPECT_FALSE(fs::exists(dir_ / "ran"));
}

TEST_F(MailSubmitterTest, MissingProgramIsTemporary) {
  const auto result = submitter(dir_ / "no-such-sendmail").submit(kFrom, kRcpt, kSmallMessage);
  EXPECT_EQ(result.outcome, kTemporary);
  EXPECT_EQ(result.detail,
            "sendmail cannot run " + (dir_ / "no-such-sendmail").string() + ": No such file or directory");
}

TEST_F(MailSubmitterTest, EmptyCommandIsRefusedWhenBuilt) {
  MailSubmitConfig config;
  config.argv_prefix.clear();
  EXPECT_THROW(MailSubmitter{config}, std::invalid_argument);
}

TEST_F(MailSubmitterTest, ConcurrentSubmissionsKeepTheirOwnStreams) {
  const auto program = script("sendmail", "sleep 0.05; cat > @DIR@/\"$5\"");
  const auto mailer = submitter(program);
  std::vector<std::thread> threads;
  std::array<DeliveryOutcome, 8> outcomes{};
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    threads.emplace_back([&, i] {
      outcomes.at(i) = mailer.submit(kFrom, "r" + std::to_string(i), "message " + std::to_string(i)).outcome;
    });
  }
  for (auto& thread : threads) thread.join();
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes.at(i), kDelivered) << i;
    EXPECT_EQ(read_file(dir_ / ("r" + std::to_string(i))), "message " + std::to_string(i));
  }
}

// ---- HttpsReportPoster -----------------------------------------------------

const fs::path kSinkScript = fs::path(__FILE__).parent_path().parent_path() / "integration/lib/https_sink.py";

// One https_sink.py process; stopped (SIGTERM, reaped) when destroyed.
class Sink {
 public:
  Sink(const fs::path& dir, const std::string& name, const std::string& status,
       const std::string& host = "127.0.0.1", const std::vector<std::string>& extra = {})
      : out_(dir / name), host_(host) {
    fs::create_directories(out_);
    std::vector<std::string> args = {"python3",
                                     kSinkScript.string(),
                                     "--cert",
                                     (dir / "leaf.pem").string(),
                                     "--key",
                                     (dir / "leaf.key").string(),
                                     "--port",
                                     "0",
                                     "--out",
                                     out_.string(),
                                     "--status",
                                     status,
                                     "--host",
                                     host,
                                     "--exit-with-parent"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int port_pipe[2];
    if (pipe2(port_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, port_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (out_ / "sink.log").c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
    const int rc = posix_spawnp(&pid_, "python3", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(port_pipe[1]);
    if (rc == 0) port_ = read_port(port_pipe[0]);
    close(port_pipe[0]);
    if (rc != 0 || port_ <= 0) throw std::runtime_error("https_sink.py did not start: " + log());
  }
  ~Sink() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  std::string uri(const std::string& path = "/tlsrpt") const {
    return "https://" + host_ + ":" + std::to_string(port_) + path;
  }
  int posts() const {
    int count = 0;
    for (const auto& entry : fs::directory_iterator(out_)) count += entry.path().extension() == ".body";
    return count;
  }
  std::string body(int n) const { return read_file(out_ / (std::to_string(n) + ".body")); }
  std::string headers(int n) const { return read_file(out_ / (std::to_string(n) + ".headers")); }
  std::string log() const { return read_file(out_ / "sink.log"); }

 private:
  static int read_port(int fd) {
    std::string line;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buffer[64];
      const ssize_t got = read(fd, buffer, sizeof buffer);
      if (got <= 0) break;
      line.append(buffer, static_cast<std::size_t>(got));
    }
    return std::atoi(line.c_str());
  }

  fs::path out_;
  std::string host_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class HttpsReportPosterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      dir_ = make_temp_dir("report_transport_https");
    } catch (const std::exception& error) {
      setup_error_ = error.what();
      return;
    }
    const std::string ca_ext =
        " -days 2 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign";
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    std::ofstream(dir_ / "leaf.ext") << "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                                        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n";
    run("openssl req -x509" + key + " -keyout ca.key -out ca.pem -subj '/CN=report test CA'" + ca_ext) &&
        run("openssl req -x509" + key + " -keyout otherca.key -out otherca.pem -subj '/CN=other CA'" +
            ca_ext) &&
        run("openssl req -new" + key + " -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1") &&
        run("openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
            " -extfile leaf.ext -out leaf.pem");
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }
  void SetUp() override { ASSERT_EQ(setup_error_, ""); }

  static bool run(const std::string& command) {
    const std::string full = "cd '" + dir_.string() + "' && " + command + " >>openssl.log 2>&1";
    if (std::system(full.c_str()) == 0) return true;
    setup_error_ = "command failed: " + command;
    return false;
  }

  static HttpsReportPoster poster(const std::string& ca = "ca.pem", milliseconds total = milliseconds(3000)) {
    HttpsPosterConfig config;
    config.ca_file = (dir_ / ca).string();
    config.connect_timeout = milliseconds(2000);
    config.total_timeout = total;
    config.allow_private_addresses = true;  // the sinks listen on 127.0.0.1
    return HttpsReportPoster(config);
  }

  static inline fs::path dir_;
  static inline std::string setup_error_;
};

TEST_F(HttpsReportPosterTest, PostsTheExactBodyAsTlsrptGzip) {
  const Sink sink(dir_, "exact", "200");
  const std::string body = "\x1f\x8b" + binary_bytes(std::size_t{100} * 1024);
  const auto result = poster().post(sink.uri("/v1/tlsrpt"), body);
  EXPECT_EQ(result.outcome, kDelivered) << result.detail;
  EXPECT_EQ(result.detail, "https 200");
  ASSERT_EQ(sink.posts(), 1);
  EXPECT_TRUE(sink.body(1) == body) << "the sink saved other bytes";
  const std::string headers = sink.headers(1);
  EXPECT_TRUE(headers.starts_with("POST /v1/tlsrpt HTTP/1.1\r\n")) << headers;
  EXPECT_NE(headers.find("\nContent-Type: application/tlsrpt+gzip\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("\nUser-Agent: mta-sts-milter\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("\nContent-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(headers.find("Expect:"), std::string::npos) << headers;
}

// One sink answers the codes in turn: each POST meets the next one. A
// followed redirect would shift the sequence and show in the sink's log.
// The default refuses a receiver's host that resolves to one of our own
// addresses: nothing reaches the sink, and the outcome is final.
TEST_F(HttpsReportPosterTest, LoopbackDestinationIsRefusedUnlessAllowed) {
  const Sink sink(dir_, "private", "200");
  HttpsPosterConfig config;
  config.ca_file = (dir_ / "ca.pem").string();
  config.connect_timeout = milliseconds(2000);
  config.total_timeout = milliseconds(3000);
  const auto result = HttpsReportPoster(config).post(sink.uri("/v1/tlsrpt"), "\x1f\x8b");
  EXPECT_EQ(result.outcome, DeliveryOutcome::Permanent) << result.detail;
  EXPECT_NE(result.detail.find("resolves to 127.0.0.1, not a public address"), std::string::npos)
      << result.detail;
  EXPECT_EQ(sink.posts(), 0);
}

TEST(NetReportTransport, PublicAddressTable) {
  for (const char* address : {"0.0.0.0",
                              "10.1.2.3",
                              "100.64.0.1",
                              "127.0.0.1",
                              "127.3.0.9",
                              "169.254.169.254",
                              "172.16.0.1",
                              "172.31.255.255",
                              "192.0.0.8",
                              "192.0.2.1",
                              "192.168.1.1",
                              "198.18.0.1",
                              "198.51.100.7",
                              "203.0.113.9",
                              "224.0.0.1",
                              "240.0.0.1",
                              "255.255.255.255",
                              "::",
                              "::1",
                              "fc00::1",
                              "fd12::1",
                              "fe80::1",
                              "ff02::1",
                              "2001:db8::1",
                              "::ffff:127.0.0.1",
                              "::ffff:10.0.0.1",
                              "",
                              "example.com",
                              "1.2.3.4.5"})
    EXPECT_FALSE(is_public_address(address)) << address;
  for (const char* address :
       {"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.15.255.255", "172.32.0.1", "192.169.0.1",
        "198.20.0.1", "223.255.255.255", "2a00:1450::1", "2606:4700::1111", "::ffff:8.8.8.8"})
    EXPECT_TRUE(is_public_address(address)) << address;
}

TEST_F(HttpsReportPosterTest, StatusDecidesTheOutcome) {
  const std::vector<std::pair<int, DeliveryOutcome>> cases = {
      {200, kDelivered}, {201, kDelivered}, {202, kDelivered}, {204, kDelivered}, {408, kTemporary},
      {425, kTemporary}, {429, kTemporary}, {500, kTemporary}, {502, kTemporary}, {503, kTemporary},
      {400, kPermanent}, {401, kPermanent}, {404, kPermanent}, {413, kPermanent}, {301, kPermanent},
      {302, kPermanent}, {303, kPermanent}, {307, kPermanent}, {308, kPermanent},
  };
  std::string codes;
  for (const auto& [code, outcome] : cases) codes += (codes.empty() ? "" : ",") + std::to_string(code);
  const Sink sink(dir_, "codes", codes);
  const auto reporter = poster();
  for (const auto& [code, outcome] : cases) {
    const auto result = reporter.post(sink.uri(), "report");
    EXPECT_EQ(result.outcome, outcome) << code << ": " << result.detail;
    const std::string expected =
        "https " + std::to_string(code) + (code / 100 == 3 ? " redirect not followed" : "");
    EXPECT_EQ(result.detail, expected);
  }
  EXPECT_EQ(sink.posts(), static_cast<int>(cases.size()));
  const std::string log = sink.log();
  EXPECT_EQ(log.find("/redirected"), std::string::npos) << log;
  EXPECT_EQ(log.find("-> 405"), std::string::npos) << log;
}

TEST_F(HttpsReportPosterTest, RetryAfterTemporaryFailuresDelivers) {
  const Sink sink(dir_, "retry", "503,503,200");
  const auto reporter = poster();
  EXPECT_EQ(reporter.post(sink.uri(), "r").outcome, kTemporary);
  EXPECT_EQ(reporter.post(sink.uri(), "r").outcome, kTemporary);
  EXPECT_EQ(reporter.post(sink.uri(), "r").outcome, kDelivered);
  EXPECT_EQ(sink.posts(), 3);
}

// The receiver's certificate comes from a CA we do not trust.
TEST_F(HttpsReportPosterTest, UntrustedCertificateIsTemporaryAndSaysSo) {
  const Sink sink(dir_, "otherca", "200");
  const auto result = poster("otherca.pem").post(sink.uri(), "report");
  EXPECT_EQ(result.outcome, kTemporary);
  EXPECT_NE(result.detail.find("certificate"), std::string::npos) << result.detail;
  EXPECT_EQ(sink.posts(), 0);
}

// The leaf names 127.0.0.1 only; the same server reached as 127.0.0.2.
TEST_F(HttpsReportPosterTest, WrongHostNameIsTemporaryAndSaysSo) {
  const Sink sink(dir_, "wrongname", "200", "127.0.0.2");
  const auto result = poster().post(sink.uri(), "report");
  EXPECT_EQ(result.outcome, kTemporary);
  EXPECT_NE(result.detail.find("certificate"), std::string::npos) << result.detail;
  EXPECT_EQ(sink.posts(), 0);
}

TEST_F(HttpsReportPosterTest, OnlyHttpsUrisArePosted) {
  const Sink sink(dir_, "schemes", "200");
  std::string port_and_path = sink.uri().substr(std::string("https://").size());
  const auto reporter = poster();
  for (const std::string& uri :
       std::vector<std::string>{"http://" + port_and_path, "mailto:tlsrpt@receiver.example",
                                "ftp://" + port_and_path, "https:" + port_and_path, "", "https"}) {
    const auto result = reporter.post(uri, "report");
    EXPECT_EQ(result.outcome, kPermanent) << uri;
    EXPECT_EQ(result.detail, "not an https uri") << uri;
  }
  for (const std::string& uri : std::vector<std::string>{"https://127.0.0.1:99999/", "https://[::1/",
                                                         "https://" + port_and_path + " x"}) {
    const auto result = reporter.post(uri, "report");
    EXPECT_EQ(result.outcome, kPermanent) << uri << ": " << result.detail;
    EXPECT_TRUE(result.detail.starts_with("https bad uri: ")) << uri << ": " << result.detail;
  }
  EXPECT_EQ(sink.posts(), 0);
  // The scheme is case-insensitive (RFC 3986 §3.1).
  const auto upper = reporter.post("HTTPS://" + port_and_path, "report");
  EXPECT_EQ(upper.outcome, kDelivered) << upper.detail;
  EXPECT_EQ(sink.posts(), 1);
}

int closed_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!bound) throw std::runtime_error("cannot bind a loopback port");
  return ntohs(address.sin_port);
}

TEST_F(HttpsReportPosterTest, ClosedPortIsTemporary) {
  const auto result = poster().post("https://127.0.0.1:" + std::to_string(closed_port()) + "/", "report");
  EXPECT_EQ(result.outcome, kTemporary);
  EXPECT_TRUE(result.detail.starts_with("https connect: ")) << result.detail;
}

// A listener that never accepts: the TCP handshake completes in the kernel,
// the TLS one never does.
TEST_F(HttpsReportPosterTest, SilentServerTimesOutAsTemporary) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const auto started = Clock::now();
  const auto result = poster("ca.pem", milliseconds(300))
                          .post("https://127.0.0.1:" + std::to_string(ntohs(address.sin_port)), "r");
  const auto elapsed = Clock::now() - started;
  close(fd);
  EXPECT_EQ(result.outcome, kTemporary);
  EXPECT_TRUE(result.detail.starts_with("https timeout: ")) << result.detail;
  EXPECT_LT(elapsed, milliseconds(2000));
}

// An endless 200 answer: read up to the cap, then cut; the status stands.
TEST_F(HttpsReportPosterTest, ResponseBodyIsCutAtTheCap) {
  const Sink sink(dir_, "endless", "200", "127.0.0.1", {"--body-bytes", "17179869184"});
  const auto started = Clock::now();
  const auto result = poster("ca.pem", milliseconds(3000)).post(sink.uri(), "report");
  EXPECT_EQ(result.outcome, kDelivered) << result.detail;
  EXPECT_LT(Clock::now() - started, milliseconds(2000));
}

TEST_F(HttpsReportPosterTest, UnreadableCaFileIsRefusedWhenBuilt) {
  EXPECT_THROW(poster("no-such-ca.pem"), std::runtime_error);
  EXPECT_THROW(poster("leaf.csr"), std::runtime_error);  // readable, no certificate
}

TEST_F(HttpsReportPosterTest, ConcurrentPostsShareOnePoster) {
  const Sink sink(dir_, "concurrent", "200");
  const auto reporter = poster();
  std::array<DeliveryOutcome, 6> outcomes{};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < outcomes.size(); ++i)
    threads.emplace_back(
        [&, i] { outcomes.at(i) = reporter.post(sink.uri(), "report " + std::to_string(i)).outcome; });
  for (auto& thread : threads) thread.join();
  for (const auto outcome : outcomes) EXPECT_EQ(outcome, kDelivered);
  EXPECT_EQ(sink.posts(), static_cast<int>(outcomes.size()));
}

}  // namespace
}  // namespace mtasts::policy::net
