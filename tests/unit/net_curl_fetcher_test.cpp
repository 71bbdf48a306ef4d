// CurlFetcher against real HTTPS servers on 127.0.0.1 (RFC 8461 §3.3, §4.2).
// Hermetic: a test CA and leaf certificates are generated at start with the
// openssl CLI, and a python3 http.server + ssl process serves them (choosing
// the certificate by SNI) on ephemeral loopback ports. The scenario is the
// middle label of the host name: mta-sts.<scenario>.test.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "policy/net/curl_fetcher.h"
#include "policy/policy.h"

extern char** environ;

namespace mtasts::policy::net {
namespace {

namespace fs = std::filesystem;

// Scenarios whose certificate is the good one (SAN = their own host name).
const std::vector<std::string> kGoodCertScenarios = {"ok",     "charset",  "upper", "html",       "notype",
                                                     "plainx", "notfound", "error", "unavail",    "moved",
                                                     "found",  "exact",    "bigcl", "bigchunked", "bigclose",
                                                     "big404", "slow",     "empty", "headers",    "unasked"};

constexpr const char* kServerScript = R"PY(
import http.server, os, socketserver, ssl, sys, threading, time

d = sys.argv[1]
# Gone with the test process however it ends (a sanitizer abort skips
# TearDownTestSuite): an orphan would keep ctest's output pipe open.
import ctypes
ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
if os.getppid() != int(sys.argv[2]):
    sys.exit(0)
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mail.ok.test\r\nmax_age: 86400\r\n"
lock = threading.Lock()
log = open(os.path.join(d, "requests.log"), "a", buffering=1)

def record(line):
    with lock:
        log.write(line + "\n")
        log.flush()

def scenario(host):
    parts = (host or "").split(":")[0].lower().split(".")
    ok = len(parts) == 3 and parts[0] == "mta-sts" and parts[2] == "test"
    return parts[1] if ok else ""

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def reply(self, status, ctype, body, framing="length", extra=None):
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif framing == "length":
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if framing == "chunked":
            for i in range(0, len(body), 4096):
                c = body[i:i + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def do_GET(self):
        h = self.headers
        record("GET %s %s ua=%s ims=%s inm=%s" % (h.get("Host"), self.path, h.get("User-Agent"),
                                                   h.get("If-Modified-Since"), h.get("If-None-Match")))
        if self.path != "/.well-known/mta-sts.txt":
            return self.reply(400, "text/plain", b"wrong path")
        s = scenario(h.get("Host"))
        # Same host (so it would resolve): only the redirect rule stops it.
        target = "https://%s/redirected/.well-known/mta-sts.txt" % h.get("Host")
        if s == "charset": return self.reply(200, "text/plain; charset=utf-8", POLICY)
        if s == "upper": return self.reply(200, "TEXT/Plain ;charset=UTF-8", POLICY)
        if s == "html": return self.reply(200, "text/html", POLICY)
        if s == "notype": return self.reply(200, None, POLICY)
        if s == "plainx": return self.reply(200, "text/plainx", POLICY)
        if s == "notfound": return self.reply(404, "text/plain", b"not found")
        if s == "error": return self.reply(500, "text/plain", b"oops")
        if s == "unavail": return self.reply(503, "text/plain", b"later")
        if s == "moved": return self.reply(301, "text/plain", b"", extra={"Location": target})
        if s == "found": return self.reply(302, "text/plain", b"", extra={"Location": target})
        if s == "exact": return self.reply(200, "text/plain", b"#" * 65536)
        if s == "bigcl": return self.reply(200, "text/plain", b"#" * 65537)
        if s == "bigchunked": return self.reply(200, "text/plain", b"#" * 70000, "chunked")
        if s == "bigclose": return self.reply(200, "text/plain", b"#" * 70000, "close")
        if s == "big404": return self.reply(404, "text/plain", b"#" * 200000)
        if s == "empty": return self.reply(200, "text/plain", b"")
        if s == "slow":
            time.sleep(4)
        return self.reply(200, "text/plain", POLICY)

    def do_CONNECT(self):
        record("CONNECT %s" % self.path)
        self.reply(403, "text/plain", b"no tunnel")

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    def handle_error(self, request, client_address):
        pass

def context(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))
    return ctx

contexts = {}
for f in os.listdir(d):
    if f.startswith("leaf-") and f.endswith(".pem"):
        contexts[f[5:-4]] = context(f[:-4])
default = contexts["good"]

def pick(sock, server_name, _ctx):
    ctx = contexts.get(scenario(server_name))
    if ctx is not None:
        sock.context = ctx

default.sni_callback = pick
tls = Server(("127.0.0.1", 0), Handler)
tls.socket = default.wrap_socket(tls.socket, server_side=True, do_handshake_on_connect=False)
plain = Server(("127.0.0.1", 0), Handler)
for s in (tls, plain):
    threading.Thread(target=s.serve_forever, daemon=True).start()
with open(os.path.join(d, "ports.tmp"), "w") as f:
    f.write("%d %d\n" % (tls.server_address[1], plain.server_address[1]))
os.rename(os.path.join(d, "ports.tmp"), os.path.join(d, "ports"))
while True:
    time.sleep(3600)
)PY";

std::string join_good_sans() {
  std::string sans;
  for (const auto& name : kGoodCertScenarios) {
    sans += (sans.empty() ? "" : ",") + std::string("DNS:mta-sts.") + name + ".test";
  }
  return sans;
}

struct LeafSpec {
  std::string file;  // leaf-<scenario> (the server picks it by SNI)
  std::string cn;
  std::string san;     // "" for a certificate without subjectAltName
  std::string issuer;  // "ca" or "otherca"
  int days;            // negative: already expired
};

class CurlFetcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A proxy in the environment must be ignored (no proxy configured).
    setenv("https_proxy", "http://127.0.0.3:9", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.3:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.3:9", 1);
    char templ[] = "/tmp/curl_fetcher_test.XXXXXX";
    if (mkdtemp(templ) == nullptr) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = templ;
    if (!make_certificates() || !start_server()) return;
  }

  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      kill(server_pid_, SIGTERM);
      waitpid(server_pid_, nullptr, 0);
      server_pid_ = -1;
    }
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  void SetUp() override { ASSERT_EQ(setup_error_, ""); }

  static bool run(const std::string& command) {
    const std::string full = "cd '" + dir_.string() + "' && " + command + " >>openssl.log 2>&1";
    if (std::system(full.c_str()) != 0) {
      setup_error_ = "command failed: " + command;
      return false;
    }
    return true;
  }

  static bool make_ca(const std::string& name) {
    return run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name +
               ".key -out " + name + ".pem -subj '/CN=" + name +
               " MTA-STS test' -days 2 -addext basicConstraints=critical,CA:TRUE"
               " -addext keyUsage=critical,keyCertSign");
  }

  static bool make_leaf(const LeafSpec& spec) {
    std::ofstream ext(dir_ / (spec.file + ".ext"));
    ext << "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
    if (!spec.san.empty()) ext << "subjectAltName=" << spec.san << "\n";
    ext.close();
    return run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + spec.file +
               ".key -out " + spec.file + ".csr -subj '/CN=" + spec.cn + "'") &&
           run("openssl x509 -req -in " + spec.file + ".csr -CA " + spec.issuer + ".pem -CAkey " +
               spec.issuer + ".key -CAcreateserial -days " + std::to_string(spec.days) + " -extfile " +
               spec.file + ".ext -out " + spec.file + ".pem");
  }

  static bool make_certificates() {
    if (!make_ca("ca") || !make_ca("otherca")) return false;
    const std::vector<LeafSpec> leaves = {
        {"leaf-good", "mta-sts.ok.test", join_good_sans(), "ca", 2},
        {"leaf-expired", "mta-sts.expired.test", "DNS:mta-sts.expired.test", "ca", -1},
        {"leaf-wrongname", "mta-sts.wrongname.test", "DNS:mta-sts.elsewhere.test", "ca", 2},
        {"leaf-cnonly", "mta-sts.cnonly.test", "", "ca", 2},
        {"leaf-wildcard", "wildcard", "DNS:*.wildcard.test", "ca", 2},
        {"leaf-partial", "partial", "DNS:mta*.partial.test", "ca", 2},
        {"leaf-toobroad", "toobroad", "DNS:*.test", "ca", 2},
        {"leaf-otherca", "mta-sts.otherca.test", "DNS:mta-sts.otherca.test", "otherca", 2},
    };
    for (const auto& leaf : leaves) {
      if (!make_leaf(leaf)) return false;
    }
    return run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        " -keyout leaf-selfsigned.key -out leaf-selfsigned.pem"
        " -subj /CN=mta-sts.selfsigned.test -days 2"
        " -addext subjectAltName=DNS:mta-sts.selfsigned.test");
  }

  static bool start_server() {
    const fs::path script = dir_ / "server.py";
    std::ofstream(script) << kServerScript;
    const std::string python = "python3";
    std::vector<std::string> args = {python, script.string(), dir_.string(), std::to_string(getpid())};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&server_pid_, "python3", nullptr, nullptr, argv.data(), environ) != 0) {
      setup_error_ = "cannot start python3";
      return false;
    }
    for (int i = 0; i < 200; ++i) {
      std::ifstream ports(dir_ / "ports");
      if (ports >> tls_port_ >> plain_port_) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    setup_error_ = "python3 server did not start";
    return false;
  }

  static CurlFetcherConfig config() {
    CurlFetcherConfig c;
    c.timeout_seconds = 2;
    c.connect_timeout_seconds = 2;
    c.ca_file = (dir_ / "ca.pem").string();
    c.port = tls_port_;
    return c;
  }

  static std::string request_log() {
    std::ifstream in(dir_ / "requests.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  static inline fs::path dir_;
  static inline std::string setup_error_;
  static inline pid_t server_pid_ = -1;
  static inline int tls_port_ = 0;
  static inline int plain_port_ = 0;
};

enum class Setup { TestCa, SystemStore, PlainPort };

struct Case {
  std::string domain;
  std::vector<std::string> addresses;
  Setup setup;
  bool ok;
  ResultType type;  // when !ok
  std::string reason;
  bool temporary;
  std::size_t body_size;  // when ok; 0 = the standard policy
};

constexpr auto kFetch = ResultType::StsPolicyFetchError;
constexpr auto kWebPki = ResultType::StsWebpkiInvalid;
const std::vector<std::string> kLoopback = {"127.0.0.1"};

const std::vector<Case> kCases = {
    // §3.3 media type: text/plain, case-insensitive, parameters allowed.
    {"ok.test", kLoopback, Setup::TestCa, true, kFetch, "", false, 0},
    {"charset.test", kLoopback, Setup::TestCa, true, kFetch, "", false, 0},
    {"upper.test", kLoopback, Setup::TestCa, true, kFetch, "", false, 0},
    {"html.test", kLoopback, Setup::TestCa, false, kFetch, "content-type", false, 0},
    {"notype.test", kLoopback, Setup::TestCa, false, kFetch, "content-type", false, 0},
    {"plainx.test", kLoopback, Setup::TestCa, false, kFetch, "content-type", false, 0},
    {"empty.test", kLoopback, Setup::TestCa, true, kFetch, "", false, 0},
    // Only 200; redirects are never followed.
    {"notfound.test", kLoopback, Setup::TestCa, false, kFetch, "http-404", false, 0},
    {"error.test", kLoopback, Setup::TestCa, false, kFetch, "http-500", true, 0},
    {"unavail.test", kLoopback, Setup::TestCa, false, kFetch, "http-503", true, 0},
    {"moved.test", kLoopback, Setup::TestCa, false, kFetch, "redirect", false, 0},
    {"found.test", kLoopback, Setup::TestCa, false, kFetch, "redirect", false, 0},
    // 64 KiB cap, with and without Content-Length.
    {"exact.test", kLoopback, Setup::TestCa, true, kFetch, "", false, kMaxPolicyBytes},
    {"bigcl.test", kLoopback, Setup::TestCa, false, kFetch, "too-large", false, 0},
    {"bigchunked.test", kLoopback, Setup::TestCa, false, kFetch, "too-large", false, 0},
    {"bigclose.test", kLoopback, Setup::TestCa, false, kFetch, "too-large", false, 0},
    {"big404.test", kLoopback, Setup::TestCa, false, kFetch, "http-404", false, 0},
    // Timeouts and connections.
    {"slow.test", kLoopback, Setup::TestCa, false, kFetch, "timeout", true, 0},
    {"ok.test", {"127.0.0.2"}, Setup::TestCa, false, kFetch, "connect", true, 0},
    {"ok.test", {"127.0.0.2", "127.0.0.1"}, Setup::TestCa, true, kFetch, "", false, 0},
    {"ok.test", {"::1", "127.0.0.1"}, Setup::TestCa, true, kFetch, "", false, 0},
    {"ok.test", {}, Setup::TestCa, false, kFetch, "dns-no-address", false, 0},
    {"ok.test",
     {"mta-sts.ok.test", "127.0.0.1,127.0.0.2"},
     Setup::TestCa,
     false,
     kFetch,
     "dns-no-address",
     false,
     0},
    // §4.2 certificate rules (PKIX validation, SAN dNSName only).
    {"wildcard.test", kLoopback, Setup::TestCa, true, kFetch, "", false, 0},
    {"expired.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-expired", false, 0},
    {"wrongname.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-host-mismatch", false, 0},
    {"cnonly.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-host-mismatch", false, 0},
    {"partial.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-host-mismatch", false, 0},
    {"toobroad.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-host-mismatch", false, 0},
    {"selfsigned.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-untrusted", false, 0},
    {"otherca.test", kLoopback, Setup::TestCa, false, kWebPki, "cert-untrusted", false, 0},
    {"ok.test", kLoopback, Setup::SystemStore, false, kWebPki, "cert-untrusted", false, 0},
    // A plain-HTTP answer is no PKIX verdict (RFC 8460 §4.3.2.2): a fetch
    // error that may go away, never a definite "no policy".
    {"ok.test", kLoopback, Setup::PlainPort, false, kFetch, "tls-handshake", true, 0},
};

const std::string kPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mail.ok.test\r\nmax_age: 86400\r\n";

// Issue #10: a CA file that cannot be read used to start fine and then fail
// every fetch as the policy host's certificate problem.
TEST_F(CurlFetcherTest, UnreadableCaFileIsRefusedWhenBuilt) {
  auto cfg = config();
  cfg.ca_file = (dir_ / "missing-ca.pem").string();
  EXPECT_THROW(CurlFetcher{cfg}, std::runtime_error);
  cfg.ca_file = dir_.string();  // a directory is not a CA file either
  EXPECT_THROW(CurlFetcher{cfg}, std::runtime_error);
  EXPECT_NO_THROW(CurlFetcher{config()});
}

TEST_F(CurlFetcherTest, TableOfScenarios) {
  for (const auto& c : kCases) {
    std::string where = c.domain + " via";
    for (const auto& a : c.addresses) where += " " + a;
    SCOPED_TRACE(where);
    auto cfg = config();
    if (c.setup == Setup::SystemStore) cfg.ca_file.clear();
    if (c.setup == Setup::PlainPort) cfg.port = plain_port_;
    CurlFetcher fetcher(cfg);
    const auto result = fetcher.fetch(c.domain, c.addresses);
    if (c.ok) {
      if (!result) {
        ADD_FAILURE() << "unexpected " << result.error().reason << ": " << result.error().detail;
        continue;
      }
      const auto& body = result->body;
      if (c.domain == "empty.test") {
        EXPECT_EQ(body, "");
      } else if (c.body_size != 0) {
        EXPECT_EQ(body.size(), c.body_size);
      } else {
        EXPECT_EQ(body, kPolicy);
      }
      continue;
    }
    const auto* failed = result ? nullptr : &result.error();
    if (failed == nullptr) {
      ADD_FAILURE() << "unexpected success";
      continue;
    }
    const auto& error = *failed;
    EXPECT_EQ(error.reason, c.reason) << error.detail;
    EXPECT_EQ(static_cast<int>(error.type), static_cast<int>(c.type)) << error.detail;
    EXPECT_EQ(error.temporary, c.temporary) << error.detail;
  }
}

TEST_F(CurlFetcherTest, RedirectTargetIsNeverRequested) {
  CurlFetcher fetcher(config());
  const auto result = fetcher.fetch("moved.test", kLoopback);
  ASSERT_FALSE(result.has_value());
  const std::string log = request_log();
  EXPECT_NE(log.find("GET mta-sts.moved.test:"), std::string::npos) << log;
  EXPECT_EQ(log.find("redirected"), std::string::npos) << log;
}

TEST_F(CurlFetcherTest, SendsUserAgentAndNoConditionalRequest) {
  CurlFetcher fetcher(config());
  ASSERT_TRUE(fetcher.fetch("headers.test", kLoopback).has_value());
  const std::string log = request_log();
  const std::string expected = "GET mta-sts.headers.test:" + std::to_string(tls_port_) +
                               " /.well-known/mta-sts.txt ua=mta-sts-milter/0.1 ims=None inm=None";
  EXPECT_NE(log.find(expected), std::string::npos) << log;
}

TEST_F(CurlFetcherTest, NoAddressMeansNoRequest) {
  CurlFetcher fetcher(config());
  const auto result = fetcher.fetch("unasked.test", std::span<const std::string>());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().reason, "dns-no-address");
  EXPECT_EQ(request_log().find("mta-sts.unasked.test"), std::string::npos) << request_log();
}

TEST_F(CurlFetcherTest, ConfiguredProxyIsUsed) {
  auto cfg = config();
  cfg.proxy = "http://127.0.0.1:" + std::to_string(plain_port_);
  CurlFetcher fetcher(cfg);
  const auto result = fetcher.fetch("ok.test", kLoopback);
  ASSERT_FALSE(result.has_value());  // the test proxy refuses tunnels
  EXPECT_EQ(result.error().reason, "proxy") << result.error().detail;
  const std::string connect = "CONNECT mta-sts.ok.test:" + std::to_string(tls_port_);
  EXPECT_NE(request_log().find(connect), std::string::npos) << request_log();
}

TEST_F(CurlFetcherTest, LogsOneDebugLineWithoutTheBody) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_level(spdlog::level::debug);
  logger->set_pattern("%v");
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  CurlFetcher fetcher(config());
  const auto ok = fetcher.fetch("ok.test", kLoopback);
  const auto missing = fetcher.fetch("notfound.test", kLoopback);
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(ok.has_value());
  const std::string text = out.str();
  EXPECT_NE(text.find("fetch domain=ok.test status=200 reason=ok bytes=" + std::to_string(kPolicy.size()) +
                      " elapsed_ms="),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("fetch domain=notfound.test status=404 reason=http-404 bytes=0"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("STSv1"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
}

TEST_F(CurlFetcherTest, TimeoutIsHonoured) {
  CurlFetcher fetcher(config());  // 2 s; the server answers after 4 s
  const auto started = std::chrono::steady_clock::now();
  const auto result = fetcher.fetch("slow.test", kLoopback);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().reason, "timeout");
  EXPECT_GE(elapsed, std::chrono::milliseconds(1900));
  EXPECT_LT(elapsed, std::chrono::milliseconds(3500));
}

// A peer that accepts and resets every connection (SO_LINGER 0), as a
// middlebox or an overloaded server does.
class ResettingListener {
 public:
  ResettingListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int peer = ::accept(fd_, nullptr, nullptr);
        if (peer < 0) return;
        const linger reset{1, 0};
        ::setsockopt(peer, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        ::close(peer);
      }
    });
  }
  ~ResettingListener() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(CurlFetcherTest, ResetAtThePolicyHostIsTemporary) {
  ResettingListener listener;
  ASSERT_NE(listener.port(), 0);
  auto cfg = config();
  cfg.port = listener.port();
  CurlFetcher fetcher(cfg);
  const auto result = fetcher.fetch("ok.test", kLoopback);
  ASSERT_FALSE(result.has_value());
  const auto& error = result.error();
  EXPECT_EQ(static_cast<int>(error.type), static_cast<int>(kFetch)) << error.detail;
  EXPECT_TRUE(error.temporary) << error.reason << ": " << error.detail;
  EXPECT_NE(error.reason, "cert-untrusted");
}

TEST_F(CurlFetcherTest, ConcurrentFetchesShareOneFetcher) {
  CurlFetcher fetcher(config());
  std::vector<int> ok(8, 0);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < ok.size(); ++i) {
    threads.emplace_back([&, i] {
      const auto result = fetcher.fetch(i % 2 == 0 ? "ok.test" : "cnonly.test", kLoopback);
      ok[i] = result.has_value() ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < ok.size(); ++i) EXPECT_EQ(ok[i], i % 2 == 0 ? 1 : 0) << i;
}

}  // namespace
}  // namespace mtasts::policy::net
