// DkimSigner: report mail signed with libopendkim and checked with
// libopendkim's verifier, the public key read from a file
// (DKIM_QUERY_FILE), never from DNS.
#include "policy/net/dkim_signer.h"

#include <gtest/gtest.h>
#ifndef _Bool       // dkim.h's C99 _Bool, as policy/net/dkim_signer.cpp maps it
#define _Bool bool  // NOLINT(bugprone-reserved-identifier)
#endif
#include <opendkim/dkim.h>
#undef _Bool
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "policy/ascii.h"
#include "policy/tlsrpt_mail.h"
#include "printable.h"

namespace mtasts::policy::net {
namespace {

using mtasts::testing::printable;

constexpr const char* kDomain = "mx.example.net";
constexpr const char* kSelector = "tlsrpt2026";

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
struct LibDeleter {
  void operator()(DKIM_LIB* lib) const { dkim_close(lib); }
};
struct DkimDeleter {
  void operator()(DKIM* dkim) const { dkim_free(dkim); }
};

Pkey rsa_key(std::size_t bits) { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits)); }
Pkey typed_key(const char* type) { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, type)); }
Pkey ec_key() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

enum class PemForm { Pkcs8, Traditional, Encrypted, PublicOnly };

std::string pem(EVP_PKEY* key, PemForm form = PemForm::Pkcs8) {
  Bio bio(BIO_new(BIO_s_mem()));
  static const char kPass[] = "secret";
  switch (form) {
    case PemForm::Pkcs8:
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
      break;
    case PemForm::Traditional:
      PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
      break;
    case PemForm::Encrypted:
      PEM_write_bio_PrivateKey(bio.get(), key, EVP_aes_256_cbc(),
                               reinterpret_cast<const unsigned char*>(kPass), sizeof kPass - 1, nullptr,
                               nullptr);
      break;
    case PemForm::PublicOnly:
      PEM_write_bio_PUBKEY(bio.get(), key);
      break;
  }
  return bio_text(bio.get());
}

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// The DNS TXT record of an RSA key (RFC 6376 §3.6.1).
std::string key_record(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int size = i2d_PUBKEY(key, &der);
  std::string record = "v=DKIM1; k=rsa; p=" + base64(der, static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return record;
}

// A DKIM_QUERY_FILE key file: "<selector>._domainkey.<domain> <record>".
class KeyFile {
 public:
  explicit KeyFile(const std::string& record) {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("dkim_keys_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".txt");
    std::ofstream(path_) << kSelector << "._domainkey." << kDomain << " " << record << "\n";
  }
  ~KeyFile() { std::filesystem::remove(path_); }
  KeyFile(const KeyFile&) = delete;
  KeyFile& operator=(const KeyFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct Verification {
  DKIM_STAT eom = DKIM_STAT_INTERNAL;
  int sig_error = -1;
  int body_hash = DKIM_SIGBH_UNTESTED;
  bool passed = false;
};

Verification verify(const std::string& message, const KeyFile& keys) {
  Verification out;
  std::unique_ptr<DKIM_LIB, LibDeleter> lib(dkim_init(nullptr, nullptr));
  if (!lib) return out;
  dkim_query_t method = DKIM_QUERY_FILE;
  dkim_options(lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method);
  std::string path = keys.path();
  dkim_options(lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, path.data(), path.size() + 1);
  DKIM_STAT status = DKIM_STAT_OK;
  std::unique_ptr<DKIM, DkimDeleter> dkim(
      dkim_verify(lib.get(), reinterpret_cast<const unsigned char*>("test"), nullptr, &status));
  if (!dkim) return out;
  std::string buffer = message;
  dkim_chunk(dkim.get(), reinterpret_cast<unsigned char*>(buffer.data()), buffer.size());
  dkim_chunk(dkim.get(), nullptr, 0);
  out.eom = dkim_eom(dkim.get(), nullptr);
  if (DKIM_SIGINFO* sig = dkim_getsignature(dkim.get())) {
    out.sig_error = dkim_sig_geterror(sig);
    out.body_hash = dkim_sig_getbh(sig);
    out.passed = DKIM_SIG_CHECK(sig);
  }
  return out;
}

bool verified(const Verification& v) {
  return v.eom == DKIM_STAT_OK && v.sig_error == DKIM_SIGERROR_OK && v.body_hash == DKIM_SIGBH_MATCH &&
         v.passed;
}

ReportMail report_mail() {
  ReportMail m;
  m.from = "tlsrpt-noreply@mx.example.net";
  m.to = "tlsrpt@example.com";
  m.policy_domain = "example.com";
  m.submitter = "mx.example.net";
  m.report_id = "2026-12-05.example.com@mx.example.net";
  m.file_name = "mx.example.net!example.com!1796428800!1796515199.json.gz";
  m.gz_report = std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10) + std::string(300, '\x5a');
  m.date = "Sun, 06 Dec 2026 00:10:00 +0000";
  m.message_id = "2026-12-05.example.com.1@mx.example.net";
  m.boundary = "tlsrpt-boundary-0123456789";
  return m;
}

std::string composed() {
  auto mail = compose_report_mail(report_mail());
  EXPECT_TRUE(mail.has_value());
  return mail.has_value() ? *mail : std::string();
}

// The tags of a DKIM-Signature field: unfolded, white space removed (RFC
// 6376 §3.2 allows FWS around and inside values such as b= and bh=).
std::map<std::string, std::string> tags_of(const std::string& field) {
  std::string value = field.substr(field.find(':') + 1);
  value.erase(std::remove_if(value.begin(), value.end(),
                             [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }),
              value.end());
  std::map<std::string, std::string> tags;
  std::size_t start = 0;
  while (start < value.size()) {
    auto end = value.find(';', start);
    if (end == std::string::npos) end = value.size();
    const auto item = value.substr(start, end - start);
    const auto eq = item.find('=');
    if (!item.empty()) tags[item.substr(0, eq)] = eq == std::string::npos ? "" : item.substr(eq + 1);
    start = end + 1;
  }
  return tags;
}

std::set<std::string> signed_headers(const std::string& h) {
  std::set<std::string> out;
  std::size_t start = 0;
  while (start <= h.size()) {
    auto end = h.find(':', start);
    if (end == std::string::npos) end = h.size();
    out.insert(ascii_lowercase(h.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

// RFC 8460 §5.3 asks for the TLS-Report-* fields; the rest are the report's own.
const std::set<std::string> kSignedHeaders = {"from",
                                              "to",
                                              "subject",
                                              "date",
                                              "message-id",
                                              "mime-version",
                                              "content-type",
                                              "tls-report-domain",
                                              "tls-report-submitter",
                                              "tls-required",
                                              "auto-submitted"};

// One RSA-2048 key for every test (generating one takes about 100 ms).
EVP_PKEY* rsa2048() {
  static const Pkey key = rsa_key(2048);
  return key.get();
}

DkimSigner signer_for(EVP_PKEY* key) {
  auto signer = DkimSigner::create(DkimKey{kDomain, kSelector, pem(key)});
  EXPECT_TRUE(signer.has_value()) << signer.error().code << ": " << signer.error().detail;
  return std::move(signer).value();
}

TEST(DkimSigner, SignedReportVerifies) {
  const auto signer = signer_for(rsa2048());
  EXPECT_EQ(signer.algorithm(), DkimAlgorithm::RsaSha256);
  const std::string message = composed();
  const auto field = signer.sign(message);
  ASSERT_TRUE(field.has_value()) << field.error().detail;
  const KeyFile keys(key_record(rsa2048()));
  EXPECT_TRUE(verified(verify(*field + message, keys))) << *field;
}

TEST(DkimSigner, SignatureFieldShapeAndTags) {
  const auto signer = signer_for(rsa2048());
  const auto field = signer.sign(composed());
  ASSERT_TRUE(field.has_value()) << field.error().detail;
  EXPECT_EQ(field->rfind("DKIM-Signature: ", 0), 0U);
  ASSERT_GE(field->size(), 2U);
  EXPECT_EQ(field->substr(field->size() - 2), "\r\n");
  for (std::size_t i = 0; i < field->size(); ++i) {
    if ((*field)[i] == '\n') {
      EXPECT_TRUE(i > 0 && (*field)[i - 1] == '\r') << "bare LF at " << i;
    }
    if ((*field)[i] == '\r') {
      EXPECT_TRUE(field->compare(i, 3, "\r\n\t") == 0 || i + 2 == field->size()) << "CR not folding at " << i;
    }
  }
  const auto tags = tags_of(*field);
  EXPECT_EQ(tags.at("v"), "1");
  EXPECT_EQ(tags.at("a"), "rsa-sha256");
  EXPECT_EQ(tags.at("c"), "relaxed/relaxed");
  EXPECT_EQ(tags.at("d"), kDomain);
  EXPECT_EQ(tags.at("s"), kSelector);
  EXPECT_EQ(tags.count("l"), 0U) << printable(*field);
  EXPECT_EQ(tags.count("x"), 0U);
  EXPECT_FALSE(tags.at("b").empty());
  EXPECT_FALSE(tags.at("bh").empty());
  EXPECT_EQ(signed_headers(tags.at("h")), kSignedHeaders) << tags.at("h");
}

// Fields outside the list stay unsigned, so relays may add or rewrite them.
TEST(DkimSigner, OnlyTheListedFieldsSigned) {
  const auto signer = signer_for(rsa2048());
  const std::string message =
      "Received: from relay.example.net\r\nX-Mailer: test\r\nReply-To: a@example.net\r\n" + composed();
  const auto field = signer.sign(message);
  ASSERT_TRUE(field.has_value()) << field.error().detail;
  EXPECT_EQ(signed_headers(tags_of(*field).at("h")), kSignedHeaders) << *field;
  const KeyFile keys(key_record(rsa2048()));
  EXPECT_TRUE(verified(verify(*field + message, keys)));
}

// Ed25519 is refused (dkim_signer.h): libopendkim 2.11 leaks on every
// Ed25519 signature (LeakSanitizer failed this suite when it was accepted).
TEST(DkimSigner, Ed25519KeyIsRefused) {
  const Pkey key = typed_key("ED25519");
  ASSERT_TRUE(key);
  const auto signer = DkimSigner::create({"mx.example.net", "sel", pem(key.get())});
  ASSERT_FALSE(signer.has_value());
  EXPECT_EQ(signer.error().code, "dkim-key-invalid");
  EXPECT_NE(signer.error().detail.find("Ed25519"), std::string::npos) << signer.error().detail;
}

// RSA keys in the other accepted forms: 1024 bits (the RFC 8301 minimum),
// the traditional "BEGIN RSA PRIVATE KEY" PEM, PEM with text before it.
TEST(DkimSigner, AcceptedRsaKeyFormsVerify) {
  const Pkey rsa1024 = rsa_key(1024);
  struct Case {
    std::string name;
    EVP_PKEY* key;
    std::string pem;
  };
  const Case cases[] = {
      {"RSA-1024", rsa1024.get(), pem(rsa1024.get())},
      {"traditional PEM", rsa2048(), pem(rsa2048(), PemForm::Traditional)},
      {"text before the PEM", rsa2048(), "# tlsrpt signing key\n" + pem(rsa2048())},
  };
  const std::string message = composed();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto signer = DkimSigner::create(DkimKey{kDomain, kSelector, c.pem});
    ASSERT_TRUE(signer.has_value()) << signer.error().detail;
    const auto field = signer->sign(message);
    ASSERT_TRUE(field.has_value()) << field.error().detail;
    const KeyFile keys(key_record(c.key));
    EXPECT_TRUE(verified(verify(*field + message, keys)));
  }
}

// Relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4): white space changes in
// signed header fields and the body keep the signature valid.
TEST(DkimSigner, RelaxedCanonicalizationToleratesWhiteSpace) {
  const auto signer = signer_for(rsa2048());
  const std::string message = composed();
  const auto field = signer.sign(message);
  ASSERT_TRUE(field.has_value()) << field.error().detail;
  const KeyFile keys(key_record(rsa2048()));
  std::string changed = message;
  changed.replace(changed.find("Subject: Report Domain:"), 23, "subject:   Report \t Domain:");
  changed.replace(changed.find("Policy domain: "), 15, "Policy domain:    ");
  EXPECT_TRUE(verified(verify(*field + changed, keys)));
}

TEST(DkimSigner, TamperedMessageFailsVerification) {
  const auto signer = signer_for(rsa2048());
  const std::string message = composed();
  const auto field = signer.sign(message);
  ASSERT_TRUE(field.has_value()) << field.error().detail;
  const KeyFile keys(key_record(rsa2048()));
  struct Case {
    std::string name;
    std::string from;
    std::string to;
  };
  const Case cases[] = {
      {"report bytes", "H4sIAAAAAAAAA", "H4sIAAAAAAAAB"},
      {"explanation", "Submitter: mx.example.net\r\n", "Submitter: mx.example.org\r\n"},
      {"body line added", "--tlsrpt-boundary-0123456789--\r\n",
       "--tlsrpt-boundary-0123456789--\r\nextra\r\n"},
      {"TLS-Report-Domain", "TLS-Report-Domain: example.com", "TLS-Report-Domain: example.org"},
      {"TLS-Report-Submitter", "TLS-Report-Submitter: mx.example.net", "TLS-Report-Submitter: mx.evil.net"},
      {"Subject", "Report Domain: example.com", "Report Domain: example.org"},
      {"To", "To: tlsrpt@example.com", "To: tlsrpt@example.org"},
      {"TLS-Required", "TLS-Required: No", "TLS-Required: Yes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string changed = message;
    const auto at = changed.find(c.from);
    ASSERT_NE(at, std::string::npos);
    changed.replace(at, c.from.size(), c.to);
    const auto result = verify(*field + changed, keys);
    EXPECT_FALSE(verified(result));
    EXPECT_EQ(result.eom, DKIM_STAT_BADSIG);
  }
}

TEST(DkimSigner, WrongPublicKeyFailsVerification) {
  const auto signer = signer_for(rsa2048());
  const std::string message = composed();
  const auto field = signer.sign(message);
  ASSERT_TRUE(field.has_value()) << field.error().detail;
  const Pkey other = rsa_key(1024);
  const KeyFile keys(key_record(other.get()));
  EXPECT_FALSE(verified(verify(*field + message, keys)));
}

TEST(DkimSigner, BadKeyRejected) {
  const Pkey ec = ec_key();
  const Pkey ed448 = typed_key("ED448");
  const Pkey rsa768 = rsa_key(768);
  const std::string good = pem(rsa2048());
  struct Case {
    std::string name;
    std::string pem;
  };
  const Case cases[] = {
      {"empty", ""},
      {"not PEM", "not a key at all"},
      {"truncated PEM", good.substr(0, good.size() / 2)},
      {"damaged base64", std::string(good).replace(good.find('\n') + 1, 8, "********")},
      {"public key only", pem(rsa2048(), PemForm::PublicOnly)},
      {"encrypted PEM", pem(rsa2048(), PemForm::Encrypted)},
      {"RSA-768", pem(rsa768.get())},
      {"EC P-256", pem(ec.get())},
      {"Ed448", pem(ed448.get())},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto signer = DkimSigner::create(DkimKey{kDomain, kSelector, c.pem});
    ASSERT_FALSE(signer.has_value());
    EXPECT_EQ(signer.error().code, "dkim-key-invalid") << signer.error().detail;
  }
}

TEST(DkimSigner, BadDomainOrSelectorRejected) {
  const std::string key = pem(rsa2048());
  const std::pair<std::string, std::string> cases[] = {
      {"", kSelector},
      {kDomain, ""},
      {"mx.example.net; l=0", kSelector},
      {kDomain, "sel\r\nBcc: x@y"},
      {"mx example net", kSelector},
      {kDomain, std::string(254, 'a')},
  };
  for (const auto& [domain, selector] : cases) {
    SCOPED_TRACE(printable(domain) + " / " + printable(selector));
    const auto signer = DkimSigner::create(DkimKey{domain, selector, key});
    ASSERT_FALSE(signer.has_value());
    EXPECT_EQ(signer.error().code, "dkim-key-invalid");
  }
}

TEST(DkimSigner, NonMessageFailsToSign) {
  const auto signer = signer_for(rsa2048());
  for (const std::string& input : {std::string(), std::string("Subject: no From field\r\n\r\nbody\r\n")}) {
    SCOPED_TRACE(printable(input));
    const auto field = signer.sign(input);
    ASSERT_FALSE(field.has_value());
    EXPECT_EQ(field.error().code, "dkim-sign-failed");
    EXPECT_FALSE(field.error().detail.empty());
  }
}

// One signer, several threads at once (run under TSan in build-tsan).
TEST(DkimSigner, ConcurrentSigningVerifies) {
  const auto signer = signer_for(rsa2048());
  const std::string message = composed();
  constexpr int kThreads = 6;
  constexpr int kRounds = 4;
  std::vector<std::vector<std::string>> fields(kThreads);
  {
    std::vector<std::jthread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < kRounds; ++r) {
          const auto field = signer.sign(message);
          fields[t].push_back(field.has_value() ? *field : "error: " + field.error().detail);
        }
      });
    }
  }
  const KeyFile keys(key_record(rsa2048()));
  for (const auto& per_thread : fields) {
    ASSERT_EQ(per_thread.size(), static_cast<std::size_t>(kRounds));
    for (const auto& field : per_thread) EXPECT_TRUE(verified(verify(field + message, keys))) << field;
  }
}

}  // namespace
}  // namespace mtasts::policy::net
