// SmtpTlsProber against real SMTP peers on 127.0.0.1 (RFC 8461 §4.2-4.3,
// RFC 3207, RFC 7672, RFC 8460 §4.3 result types). Hermetic: a test CA and
// leaf certificates are made at start with the openssl CLI (`openssl ca` for
// exact validity dates), and one python3 asyncio process serves one
// behaviour per ephemeral loopback port, logging every command it receives.
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
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "policy/net/tls_prober.h"

extern char** environ;

namespace mtasts::policy::net {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr const char* kPeerScript = R"PY(
import asyncio, os, socket, ssl, sys, threading, warnings
warnings.simplefilter("ignore")
d = sys.argv[1]
# Gone with the test process however it ends (a sanitizer abort skips
# TearDownTestSuite): an orphan would keep ctest's output pipe open.
import ctypes
ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
if os.getppid() != int(sys.argv[2]):
    sys.exit(0)
log = open(os.path.join(d, "peer.log"), "a", buffering=1)

GREETING = b"220 mx.test ESMTP ready\r\n"
EHLO = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
PEERS = {
    "good": {},
    "chain": {"cert": "chain-good", "key": "leaf-good"},
    "expired": {"cert": "leaf-expired"},
    "selfsigned": {"cert": "leaf-selfsigned"},
    "wrongname": {"cert": "leaf-wrongname"},
    "cnonly": {"cert": "leaf-cnonly"},
    "wildcard": {"cert": "leaf-wildcard"},
    "nostarttls": {"ehlo": b"250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"},
    "busy": {"starttls": b"454 4.7.0 TLS not available due to temporary reason\r\n"},
    "starttls421": {"starttls": b"421 4.3.2 Shutting down\r\n"},
    "tlsdrop": {"closebeforetls": True},
    "multiline": {"greeting": b"220-mx.multi.test ESMTP\r\n220-second line\r\n220 ready\r\n",
                  "ehlo": b"250-mx.multi.test greets you\r\n250-8BITMIME\r\n250-starttls\r\n"
                          b"250 SMTPUTF8\r\n"},
    "oldtls": {"old": True, "blocking": True},
    "greet421": {"greeting": b"421 4.3.2 Service shutting down\r\n"},
    "greet554": {"greeting": b"554 5.3.2 No SMTP service here\r\n"},
    "ehlo421": {"ehlo": b"421 4.3.2 Too busy\r\n"},
    "ehlo502": {"ehlo": b"502 5.5.2 Error: command not recognized\r\n"},
    "garbage": {"greeting": b"HTTP/1.1 400 Bad Request\r\n"},
    "mixed": {"ehlo": b"250-mx.test\r\n251 STARTTLS\r\n"},
    "endless": {"greeting": b"220-" + b"x" * 8000 + b"\r\n220 ok\r\n"},
    "silent": {"silent": True},
    "drop": {"drop": True},
    "stalltls": {"stall": True},
    "tlsclose": {"closeaftertls": True},
    "implicit": {"implicit": True},
}
contexts = {}

def context(name, spec):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if spec.get("old"):
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = ssl.TLSVersion.TLSv1_1
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
    cert = spec.get("cert", "leaf-good")
    c.load_cert_chain(os.path.join(d, cert + ".pem"), os.path.join(d, spec.get("key", cert) + ".key"))
    def sni(sock, server_name, ctx):
        log.write("%s SNI %s\n" % (name, server_name))
    c.sni_callback = sni
    return c

async def session(name, spec, reader, writer):
    try:
        if spec.get("silent"):
            await asyncio.sleep(3600)
        if spec.get("drop"):
            return
        writer.write(spec.get("greeting", GREETING))
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.decode("ascii", "replace").strip()
            log.write("%s %s\n" % (name, command))
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                writer.write(spec.get("ehlo", EHLO))
            elif verb == "STARTTLS":
                answer = spec.get("starttls", b"220 2.0.0 Ready to start TLS\r\n")
                writer.write(answer)
                await writer.drain()
                if not answer.startswith(b"220"):
                    continue
                if spec.get("stall"):
                    await asyncio.sleep(3600)
                if spec.get("closebeforetls"):
                    return
                await writer.start_tls(contexts[name])
                log.write("%s TLS %s\n" % (name, writer.get_extra_info("ssl_object").version()))
                if spec.get("closeaftertls"):
                    return
                continue
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()
    except Exception as e:
        log.write("%s ERROR %s\n" % (name, type(e).__name__))
    finally:
        writer.close()

# asyncio drops the protocol_version alert when a handshake fails, so the
# old-TLS peer is a blocking socket that sends it as real servers do.
def blocking_session(name, spec, conn):
    buf = b""
    try:
        conn.sendall(GREETING)
        while True:
            while b"\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            line, buf = buf.split(b"\n", 1)
            command = line.decode("ascii", "replace").strip()
            log.write("%s %s\n" % (name, command))
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                conn.sendall(EHLO)
            elif verb == "STARTTLS":
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                tls = contexts[name].wrap_socket(conn, server_side=True)
                log.write("%s TLS %s\n" % (name, tls.version()))
                tls.close()
                return
            else:
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
    except Exception as e:
        log.write("%s ERROR %s\n" % (name, type(e).__name__))
    finally:
        conn.close()

def blocking_server(name, spec):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=blocking_session, args=(name, spec, conn), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]

async def main():
    lines = []
    for name, spec in PEERS.items():
        contexts[name] = context(name, spec)
        if spec.get("blocking"):
            lines.append("%s %d\n" % (name, blocking_server(name, spec)))
            continue
        handler = lambda r, w, n=name, s=spec: session(n, s, r, w)
        server = await asyncio.start_server(handler, "127.0.0.1", 0,
                                            ssl=contexts[name] if spec.get("implicit") else None)
        lines.append("%s %d\n" % (name, server.sockets[0].getsockname()[1]))
    with open(os.path.join(d, "ports.tmp"), "w") as f:
        f.write("".join(lines))
    os.rename(os.path.join(d, "ports.tmp"), os.path.join(d, "ports"))
    await asyncio.Event().wait()

asyncio.run(main())
)PY";

constexpr const char* kCaConfig = R"(
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = index.txt
new_certs_dir = newcerts
certificate = ca.pem
private_key = ca.key
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
email_in_dn = no
[ any_name ]
commonName = supplied
)";

struct LeafSpec {
  std::string file;
  std::string cn;
  std::string san;    // "" for a certificate without subjectAltName
  std::string dates;  // openssl ca validity options
};

enum class Tlsa {
  None,
  SelfSignedSpki,  // 3 1 1 over leaf-selfsigned's SubjectPublicKeyInfo
  ExpiredSpki,     // 3 1 1 over leaf-expired's SPKI
  WrongSpki,       // 3 1 1 with one bit of the digest flipped
  CaCert,          // 2 0 1 over the test CA certificate
  PkixOnly,        // 0 0 1 and 1 1 1 only: unusable for SMTP (RFC 7672 §3.1.3)
  Malformed,       // 3 1 1 with a 3-byte digest
};

class TlsProberTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char templ[] = "/tmp/tls_prober_test.XXXXXX";
    if (mkdtemp(templ) == nullptr) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = templ;
    if (!make_certificates() || !read_digests() || !reserve_closed_port()) return;
    start_peers();
  }

  static void TearDownTestSuite() {
    if (peer_pid_ > 0) {
      kill(peer_pid_, SIGTERM);
      waitpid(peer_pid_, nullptr, 0);
      peer_pid_ = -1;
    }
    if (closed_fd_ >= 0) close(closed_fd_);
    closed_fd_ = -1;
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  void SetUp() override { ASSERT_EQ(setup_error_, ""); }

  static bool run(const std::string& command) {
    const std::string full = "cd '" + dir_.string() + "' && (" + command + ") >>openssl.log 2>&1";
    if (std::system(full.c_str()) != 0) {
      setup_error_ = "command failed: " + command;
      return false;
    }
    return true;
  }

  static std::string new_key(const std::string& file) {
    return "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + file + ".key";
  }

  static bool make_leaf(const LeafSpec& spec) {
    std::ofstream ext(dir_ / (spec.file + ".ext"));
    ext << "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
    if (!spec.san.empty()) ext << "subjectAltName=" << spec.san << "\n";
    ext.close();
    return run("openssl req -new " + new_key(spec.file) + " -out " + spec.file +
               ".csr -subj /CN=" + spec.cn) &&
           run("openssl ca -batch -config ca.cnf -notext -in " + spec.file + ".csr -out " + spec.file +
               ".pem -extfile " + spec.file + ".ext " + spec.dates);
  }

  static bool make_certificates() {
    std::ofstream(dir_ / "ca.cnf") << kCaConfig;
    if (!run("mkdir newcerts && touch index.txt && echo 1000 >serial") ||
        !run("openssl req -x509 " + new_key("ca") +
             " -out ca.pem -subj '/CN=Prober Test CA' -days 2"
             " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign")) {
      return false;
    }
    const std::string current = "-days 2";
    const std::vector<LeafSpec> leaves = {
        {"leaf-good", "mx.good.test", "DNS:mx.good.test", current},
        {"leaf-expired", "mx.expired.test", "DNS:mx.expired.test",
         "-startdate 20200101000000Z -enddate 20200102000000Z"},
        {"leaf-wrongname", "mx.wrongname.test", "DNS:mx.elsewhere.test", current},
        {"leaf-cnonly", "mx.cnonly.test", "", current},
        {"leaf-wildcard", "wildcard.good.test", "DNS:*.good.test", current},
    };
    for (const auto& leaf : leaves) {
      if (!make_leaf(leaf)) return false;
    }
    return run("cat leaf-good.pem ca.pem >chain-good.pem") &&
           run("openssl req -x509 " + new_key("leaf-selfsigned") +
               " -out leaf-selfsigned.pem -subj /CN=mx.selfsigned.test -days 2"
               " -addext subjectAltName=DNS:mx.selfsigned.test");
  }

  static std::optional<std::vector<std::uint8_t>> read_hex(const std::string& file) {
    std::ifstream in(dir_ / file);
    std::string hex;
    if (!(in >> hex) || hex.size() != 64) return std::nullopt;
    std::vector<std::uint8_t> bytes;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      bytes.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
  }

  // SHA-256 of the DER SubjectPublicKeyInfo (selector 1) or certificate (selector 0).
  static bool read_digests() {
    const std::string spki =
        " -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst "
        "-sha256 -r >";
    if (!run("openssl x509 -in leaf-selfsigned.pem" + spki + "selfsigned.spki") ||
        !run("openssl x509 -in leaf-expired.pem" + spki + "expired.spki") ||
        !run("openssl x509 -in ca.pem -outform DER | openssl dgst -sha256 -r >ca.cert")) {
      return false;
    }
    const auto selfsigned = read_hex("selfsigned.spki");
    const auto expired = read_hex("expired.spki");
    const auto ca = read_hex("ca.cert");
    if (!selfsigned || !expired || !ca) {
      setup_error_ = "cannot read digests";
      return false;
    }
    selfsigned_spki_ = *selfsigned;
    expired_spki_ = *expired;
    ca_cert_ = *ca;
    return true;
  }

  // A bound socket that never listens: connecting to it is refused.
  static bool reserve_closed_port() {
    closed_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (closed_fd_ < 0 || bind(closed_fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        getsockname(closed_fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      setup_error_ = "cannot reserve a port";
      return false;
    }
    ports_["closed"] = ntohs(address.sin_port);
    return true;
  }

  static void start_peers() {
    const fs::path script = dir_ / "peer.py";
    std::ofstream(script) << kPeerScript;
    std::vector<std::string> args = {"python3", script.string(), dir_.string(), std::to_string(getpid())};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&peer_pid_, "python3", nullptr, nullptr, argv.data(), environ) != 0) {
      setup_error_ = "cannot start python3";
      return;
    }
    for (int i = 0; i < 200; ++i) {
      std::ifstream ports(dir_ / "ports");
      std::string name;
      int port = 0;
      while (ports >> name >> port) ports_[name] = port;
      if (ports_.size() > 1) return;
      std::this_thread::sleep_for(milliseconds(50));
    }
    setup_error_ = "python3 SMTP peers did not start";
  }

  static SmtpTlsProberConfig config() {
    SmtpTlsProberConfig c;
    c.ca_file = (dir_ / "ca.pem").string();
    return c;
  }

  static std::vector<TlsaRecord> tlsa(Tlsa kind) {
    switch (kind) {
      case Tlsa::SelfSignedSpki:
        return {{3, 1, 1, selfsigned_spki_}};
      case Tlsa::ExpiredSpki:
        return {{3, 1, 1, expired_spki_}};
      case Tlsa::WrongSpki: {
        auto wrong = selfsigned_spki_;
        wrong[0] ^= 1;
        return {{3, 1, 1, wrong}};
      }
      case Tlsa::CaCert:
        return {{2, 0, 1, ca_cert_}};
      case Tlsa::PkixOnly:
        return {{0, 0, 1, ca_cert_}, {1, 1, 1, selfsigned_spki_}};
      case Tlsa::Malformed:
        return {{3, 1, 1, {1, 2, 3}}};
      case Tlsa::None:
        break;
    }
    return {};
  }

  static ProbeRequest request(const std::string& peer, const std::string& host, Tlsa kind = Tlsa::None) {
    ProbeRequest r;
    r.host = host;
    r.address = "127.0.0.1";
    r.port = static_cast<std::uint16_t>(ports_.at(peer));
    r.implicit_tls = peer == "implicit";
    if (kind != Tlsa::None) r.tlsa = tlsa(kind);
    r.step_timeout = milliseconds(3000);
    return r;
  }

  static std::string peer_log() {
    std::ifstream in(dir_ / "peer.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  static inline fs::path dir_;
  static inline std::string setup_error_;
  static inline pid_t peer_pid_ = -1;
  static inline int closed_fd_ = -1;
  static inline std::map<std::string, int> ports_;
  static inline std::vector<std::uint8_t> selfsigned_spki_;
  static inline std::vector<std::uint8_t> expired_spki_;
  static inline std::vector<std::uint8_t> ca_cert_;
};

struct ProbeCase {
  std::string peer;  // behaviour of the SMTP peer (one port each)
  std::string host;  // MX host name: SNI and name checks
  Tlsa tlsa;
  ProbeOutcome outcome;
  std::optional<ResultType> type;
  std::string reason;
  int step_ms = 3000;
};

constexpr auto kOk = ProbeOutcome::Verified;
constexpr auto kDane = ProbeOutcome::DaneVerified;
constexpr auto kFail = ProbeOutcome::TlsFailure;
constexpr auto kDown = ProbeOutcome::Unreachable;
const std::optional<ResultType> kNone;

const std::vector<ProbeCase> kCases = {
    // RFC 8461 §4.2 / RFC 6125 subset: WebPKI chain, SAN dNSName only.
    {"good", "mx.good.test", Tlsa::None, kOk, kNone, ""},
    {"good", "MX.Good.Test", Tlsa::None, kOk, kNone, ""},
    {"wildcard", "a.good.test", Tlsa::None, kOk, kNone, ""},
    {"wildcard", "a.b.good.test", Tlsa::None, kFail, ResultType::CertificateHostMismatch,
     "cert-host-mismatch"},
    {"wildcard", "good.test", Tlsa::None, kFail, ResultType::CertificateHostMismatch, "cert-host-mismatch"},
    {"multiline", "mx.good.test", Tlsa::None, kOk, kNone, ""},
    {"implicit", "mx.good.test", Tlsa::None, kOk, kNone, ""},
    {"expired", "mx.expired.test", Tlsa::None, kFail, ResultType::CertificateExpired, "cert-expired"},
    {"selfsigned", "mx.selfsigned.test", Tlsa::None, kFail, ResultType::CertificateNotTrusted,
     "cert-untrusted"},
    {"wrongname", "mx.wrongname.test", Tlsa::None, kFail, ResultType::CertificateHostMismatch,
     "cert-host-mismatch"},
    {"cnonly", "mx.cnonly.test", Tlsa::None, kFail, ResultType::CertificateHostMismatch,
     "cert-host-mismatch"},
    {"good", "mx.other.test", Tlsa::None, kFail, ResultType::CertificateHostMismatch, "cert-host-mismatch"},
    // RFC 8461 §4.3 / RFC 3207: STARTTLS required, TLS 1.2 at least.
    {"nostarttls", "mx.good.test", Tlsa::None, kFail, ResultType::StartTlsNotSupported,
     "starttls-not-offered"},
    {"busy", "mx.good.test", Tlsa::None, kFail, ResultType::StartTlsNotSupported, "starttls-454"},
    {"ehlo502", "mx.good.test", Tlsa::None, kFail, ResultType::StartTlsNotSupported, "ehlo-502"},
    {"oldtls", "mx.good.test", Tlsa::None, kFail, ResultType::ValidationFailure, "tls-version"},
    // 220 to STARTTLS, then the connection drops: a downgrade TLSRPT must see.
    {"tlsdrop", "mx.good.test", Tlsa::None, kFail, ResultType::ValidationFailure, "handshake-closed"},
    // Not TLS failures: the host cannot be talked to.
    {"greet421", "mx.good.test", Tlsa::None, kDown, kNone, "greeting-421"},
    {"greet554", "mx.good.test", Tlsa::None, kDown, kNone, "greeting-554"},
    {"ehlo421", "mx.good.test", Tlsa::None, kDown, kNone, "ehlo-421"},
    {"starttls421", "mx.good.test", Tlsa::None, kDown, kNone, "starttls-421"},
    {"garbage", "mx.good.test", Tlsa::None, kDown, kNone, "protocol"},
    {"mixed", "mx.good.test", Tlsa::None, kDown, kNone, "protocol"},
    {"endless", "mx.good.test", Tlsa::None, kDown, kNone, "protocol"},
    {"closed", "mx.good.test", Tlsa::None, kDown, kNone, "connect-refused"},
    {"drop", "mx.good.test", Tlsa::None, kDown, kNone, "closed"},
    {"silent", "mx.good.test", Tlsa::None, kDown, kNone, "timeout", 300},
    {"stalltls", "mx.good.test", Tlsa::None, kDown, kNone, "timeout", 300},
    // RFC 7672: DANE-EE ignores names, trust and dates; DANE-TA checks names.
    {"selfsigned", "mx.dane.test", Tlsa::SelfSignedSpki, kDane, kNone, ""},
    {"expired", "mx.expired.test", Tlsa::ExpiredSpki, kDane, kNone, ""},
    {"selfsigned", "mx.dane.test", Tlsa::WrongSpki, kFail, ResultType::TlsaInvalid, "tlsa-mismatch"},
    {"good", "mx.good.test", Tlsa::WrongSpki, kFail, ResultType::TlsaInvalid, "tlsa-mismatch"},
    {"chain", "mx.good.test", Tlsa::CaCert, kDane, kNone, ""},
    {"chain", "mx.other.test", Tlsa::CaCert, kFail, ResultType::TlsaInvalid, "tlsa-mismatch"},
    {"good", "mx.good.test", Tlsa::PkixOnly, kFail, ResultType::TlsaInvalid, "tlsa-unusable"},
    {"good", "mx.good.test", Tlsa::Malformed, kFail, ResultType::TlsaInvalid, "tlsa-unusable"},
    {"nostarttls", "mx.good.test", Tlsa::SelfSignedSpki, kFail, ResultType::StartTlsNotSupported,
     "starttls-not-offered"},
    {"oldtls", "mx.good.test", Tlsa::SelfSignedSpki, kFail, ResultType::ValidationFailure, "tls-version"},
};

std::string type_name(const std::optional<ResultType>& type) {
  return type ? std::string(to_string(*type)) : std::string("none");
}

TEST_F(TlsProberTest, TableOfPeers) {
  SmtpTlsProber prober(config());
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.peer + " as " + c.host);
    auto r = request(c.peer, c.host, c.tlsa);
    r.step_timeout = milliseconds(c.step_ms);
    const ProbeResult result = prober.probe(r);
    EXPECT_EQ(to_string(result.outcome), to_string(c.outcome)) << result.detail;
    EXPECT_EQ(type_name(result.result_type), type_name(c.type)) << result.detail;
    EXPECT_EQ(result.reason, c.reason) << result.detail;
    EXPECT_EQ(result.address, "127.0.0.1");
    const bool verified = c.outcome == kOk || c.outcome == kDane;
    EXPECT_EQ(result.tls_version, verified ? "TLSv1.3" : "") << result.detail;
    // Only 454 is a refusal the server itself calls temporary (RFC 3207 §4).
    EXPECT_EQ(result.temporary, c.reason == "starttls-454");
  }
}

TEST_F(TlsProberTest, SystemStoreDoesNotTrustTheTestCa) {
  SmtpTlsProber prober(SmtpTlsProberConfig{});
  const ProbeResult result = prober.probe(request("good", "mx.good.test"));
  EXPECT_EQ(result.reason, "cert-untrusted") << result.detail;
}

TEST_F(TlsProberTest, SendsSniEhloNameAndQuit) {
  struct Case {
    std::string configured;  // SmtpTlsProberConfig::ehlo_name
    std::string requested;   // ProbeRequest::ehlo_name
    std::string sent;
  };
  const std::vector<Case> cases = {
      {"", "client-one.example", "client-one.example"},
      {"client-two.example", "ignored.example", "client-two.example"},
      {"", "[127.0.0.1]", "[127.0.0.1]"},
  };
  for (const auto& c : cases) {
    auto cfg = config();
    cfg.ehlo_name = c.configured;
    SmtpTlsProber prober(cfg);
    auto r = request("good", "mx.good.test");
    r.ehlo_name = c.requested;
    ASSERT_EQ(prober.probe(r).outcome, ProbeOutcome::Verified);
    const std::string expected = "good EHLO " + c.sent +
                                 "\ngood STARTTLS\ngood SNI mx.good.test\ngood TLS TLSv1.3\n"
                                 "good QUIT\n";
    EXPECT_NE(peer_log().find(expected), std::string::npos) << peer_log();
  }
}

TEST_F(TlsProberTest, QuitsPolitelyWithoutStartTls) {
  auto r = request("nostarttls", "mx.good.test");
  r.ehlo_name = "polite.example";
  SmtpTlsProber prober(config());
  ASSERT_EQ(prober.probe(r).reason, "starttls-not-offered");
  EXPECT_NE(peer_log().find("nostarttls EHLO polite.example\nnostarttls QUIT\n"), std::string::npos)
      << peer_log();
}

TEST_F(TlsProberTest, PeerClosingAfterHandshakeStillVerifies) {
  SmtpTlsProber prober(config());
  for (int i = 0; i < 5; ++i) {  // the QUIT meets a closed connection: no SIGPIPE, no change
    const ProbeResult result = prober.probe(request("tlsclose", "mx.good.test"));
    EXPECT_EQ(result.outcome, ProbeOutcome::Verified) << result.reason << " " << result.detail;
  }
}

TEST_F(TlsProberTest, StepTimeoutIsHonoured) {
  SmtpTlsProber prober(config());
  for (const std::string peer : {"silent", "stalltls"}) {
    auto r = request(peer, "mx.good.test");
    r.step_timeout = milliseconds(400);
    const auto started = std::chrono::steady_clock::now();
    const ProbeResult result = prober.probe(r);
    const auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(result.reason, "timeout") << peer;
    EXPECT_GE(elapsed, milliseconds(380)) << peer;
    EXPECT_LT(elapsed, milliseconds(1500)) << peer;
  }
}

TEST_F(TlsProberTest, InvalidRequestsAreRefusedWithoutConnecting) {
  struct Case {
    std::string host;
    std::string address;
    std::string ehlo_name;
  };
  const std::vector<Case> cases = {
      {"", "127.0.0.1", "localhost"},
      {"mx.good.test\r\nRCPT", "127.0.0.1", "localhost"},
      {"mx good.test", "127.0.0.1", "localhost"},
      {"mx.good.test", "mx.good.test", "localhost"},
      {"mx.good.test", "127.0.0.1:25", "localhost"},
      {"mx.good.test", "", "localhost"},
      {"mx.good.test", "127.0.0.1", ""},
      {"mx.good.test", "127.0.0.1", "a\r\nMAIL FROM:<x>"},
      {"mx.good.test", "127.0.0.1", "[1.2.3.4] x"},
  };
  SmtpTlsProber prober(config());
  for (const auto& c : cases) {
    auto r = request("good", "mx.good.test");
    r.host = c.host;
    r.address = c.address;
    r.ehlo_name = c.ehlo_name;
    const ProbeResult result = prober.probe(r);
    EXPECT_EQ(result.outcome, ProbeOutcome::Unreachable) << c.host << " " << c.address;
    EXPECT_EQ(result.reason, "invalid-request") << c.host << " " << c.address;
  }
  EXPECT_EQ(peer_log().find("MAIL FROM"), std::string::npos) << peer_log();
  EXPECT_EQ(peer_log().find("RCPT"), std::string::npos) << peer_log();
}

TEST_F(TlsProberTest, BadConfigurationThrowsAtConstruction) {
  SmtpTlsProberConfig missing;
  missing.ca_file = (dir_ / "no-such-ca.pem").string();
  EXPECT_THROW(SmtpTlsProber{missing}, std::runtime_error);
  auto bad_name = config();
  bad_name.ehlo_name = "two words";
  EXPECT_THROW(SmtpTlsProber{bad_name}, std::runtime_error);
}

TEST_F(TlsProberTest, LogsOneDebugLinePerProbe) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_level(spdlog::level::debug);
  logger->set_pattern("%v");
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  SmtpTlsProber prober(config());
  prober.probe(request("good", "mx.good.test"));
  prober.probe(request("busy", "mx.good.test"));
  prober.probe(request("closed", "mx.good.test"));
  spdlog::set_default_logger(previous);
  const std::string text = out.str();
  const std::vector<std::string> expected = {
      "probe host=mx.good.test address=127.0.0.1 outcome=verified reason=ok tls=TLSv1.3 "
      "elapsed_ms=",
      "probe host=mx.good.test address=127.0.0.1 outcome=tls-failure reason=starttls-454 tls=- "
      "elapsed_ms=",
      "probe host=mx.good.test address=127.0.0.1 outcome=unreachable reason=connect-refused "
      "tls=- elapsed_ms=",
  };
  for (const auto& line : expected) EXPECT_NE(text.find(line), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
}

TEST_F(TlsProberTest, ConcurrentProbesShareOneProber) {
  SmtpTlsProber prober(config());
  std::vector<int> verified(8, -1);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < verified.size(); ++i) {
    threads.emplace_back([&, i] {
      const auto r = i % 2 == 0 ? request("good", "mx.good.test") : request("wrongname", "mx.wrongname.test");
      verified[i] = prober.probe(r).outcome == ProbeOutcome::Verified ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < verified.size(); ++i) EXPECT_EQ(verified[i], i % 2 == 0 ? 1 : 0) << i;
}

}  // namespace
}  // namespace mtasts::policy::net
