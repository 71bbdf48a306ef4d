// DKIM signing through libopendkim (RFC 6376).
//
// libopendkim tells PEM from DER by the key's first five bytes and reads PEM
// with OpenSSL's default passphrase callback, which prompts on the terminal.
// The key is therefore parsed here first, with a callback that refuses every
// passphrase, and handed to libopendkim re-written as unencrypted PKCS#8 PEM.
//
// libopendkim's C prototypes take non-const buffers it only reads (the key,
// which dkim_sign copies, and the message chunks); the casts below are for
// that alone.
#include "policy/net/dkim_signer.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
// dkim.h declares C99 _Bool parameters and includes <stdbool.h> only when
// its own build defined HAVE_STDBOOL_H. C++ has no _Bool: GCC's <stdbool.h>
// maps it to bool, clang's does not after C++98, so it is mapped here (the
// two have the same size and ABI).
#ifndef _Bool
#define _Bool bool  // NOLINT(bugprone-reserved-identifier)
#endif
#include <opendkim/dkim.h>
#undef _Bool

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "policy/ascii.h"

namespace mtasts::policy::net {
namespace {

constexpr std::string_view kSignatureField = "DKIM-Signature";
constexpr int kMinRsaBits = 1024;  // RFC 8301 §3.2
constexpr int kMaxRsaBits = 4096;  // RFC 8301 §3.2: what every verifier handles
constexpr std::size_t kMaxDomainLength = 253;
const unsigned char kJobId[] = "tlsrpt";  // libopendkim's log tag for the handle

struct LibDeleter {
  void operator()(DKIM_LIB* lib) const { dkim_close(lib); }
};
using LibHandle = std::unique_ptr<DKIM_LIB, LibDeleter>;

struct DkimDeleter {
  void operator()(DKIM* dkim) const { dkim_free(dkim); }
};
using DkimHandle = std::unique_ptr<DKIM, DkimDeleter>;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

Error key_invalid(std::string detail) { return Error{"dkim-key-invalid", std::move(detail)}; }
Error init_failed(std::string detail) { return Error{"dkim-init-failed", std::move(detail)}; }

// The first queued OpenSSL error, and the queue emptied: it is per thread,
// and a stale entry would confuse the next OpenSSL user on this thread.
std::string take_openssl_error() {
  std::array<char, 256> text{};
  const unsigned long code = ERR_peek_error();
  if (code != 0) ERR_error_string_n(code, text.data(), text.size());
  ERR_clear_error();
  return code != 0 ? std::string(text.data()) : "no OpenSSL error queued";
}

// Encrypted keys fail to load instead of prompting.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

// d= and s= are written into the signature as they are: only the
// characters of a DNS name (A-labels) are allowed, so that nothing can break
// the tag list or the header field.
std::optional<Error> check_name(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kMaxDomainLength)
    return key_invalid(std::string(what) + " empty or too long");
  for (const char c : name) {
    if (!is_ascii_alnum(c) && c != '-' && c != '_' && c != '.') {
      return key_invalid(std::string(what) + " holds a character other than letters, digits, '-', '_', '.'");
    }
  }
  return std::nullopt;
}

Result<Pkey> read_key(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return init_failed("BIO_new_mem_buf: " + take_openssl_error());
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (!key) return key_invalid("no unencrypted PEM private key: " + take_openssl_error());
  return key;
}

Result<DkimAlgorithm> algorithm_for(EVP_PKEY* key) {
  const int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_RSA) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      return key_invalid("RSA key of " + std::to_string(bits) + " bits; 1024 to 4096 accepted");
    }
    return DkimAlgorithm::RsaSha256;
  }
  // Ed25519 is refused: libopendkim 2.11 leaks its key objects on every
  // Ed25519 signature (LeakSanitizer in CI), and receivers that predate RFC
  // 8463 treat such a signature as absent (RFC 8463 §3 has signers add RSA).
  if (type == EVP_PKEY_ED25519)
    return key_invalid(
        "Ed25519 key; use RSA (2048 bits): libopendkim 2.11 leaks on Ed25519, and receivers "
        "before RFC 8463 ignore it");
  const char* name = OBJ_nid2sn(type);
  return key_invalid(std::string("key type ") + (name != nullptr ? name : "unknown") + "; RSA accepted");
}

// Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), the form
// libopendkim reads for both key types.
Result<std::string> pkcs8_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return init_failed("PEM_write_bio_PrivateKey: " + take_openssl_error());
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<std::size_t>(size));
  OPENSSL_cleanse(data, static_cast<std::size_t>(size));
  return pem;
}

// The header fields signed (h=), RFC 8460 §5.3 and the report's own fields.
// libopendkim compiles the list into a regular expression; it keeps no
// pointer to the array.
Result<LibHandle> make_lib() {
  LibHandle lib(dkim_init(nullptr, nullptr));
  if (!lib) return init_failed("dkim_init failed");
  const char* headers[] = {"from",
                           "to",
                           "subject",
                           "date",
                           "message-id",
                           "mime-version",
                           "content-type",
                           "tls-report-domain",
                           "tls-report-submitter",
                           "tls-required",
                           "auto-submitted",
                           nullptr};
  const DKIM_STAT status =
      dkim_options(lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, headers, sizeof(char**));
  if (status != DKIM_STAT_OK) {
    return init_failed(std::string("dkim_options(SIGNHDRS): ") + dkim_getresultstr(status));
  }
  return lib;
}

Error sign_failed(std::string_view step, DKIM_STAT status, DKIM* dkim) {
  std::string detail = std::string(step) + ": " + dkim_getresultstr(status);
  const char* text = dkim != nullptr ? dkim_geterror(dkim) : nullptr;
  if (text != nullptr && *text != '\0') detail += std::string(": ") + text;
  return Error{"dkim-sign-failed", std::move(detail)};
}

}  // namespace

struct DkimSigner::State {
  std::string domain;
  std::string selector;
  std::string key_pem;  // unencrypted PKCS#8, as libopendkim reads it
  DkimAlgorithm algorithm = DkimAlgorithm::RsaSha256;
  LibHandle lib;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() { OPENSSL_cleanse(key_pem.data(), key_pem.size()); }
};

DkimSigner::DkimSigner(std::unique_ptr<State> state) : state_(std::move(state)) {}
DkimSigner::~DkimSigner() = default;
DkimSigner::DkimSigner(DkimSigner&&) noexcept = default;
DkimSigner& DkimSigner::operator=(DkimSigner&&) noexcept = default;

DkimAlgorithm DkimSigner::algorithm() const { return state_->algorithm; }
const std::string& DkimSigner::domain() const { return state_->domain; }
const std::string& DkimSigner::selector() const { return state_->selector; }

Result<DkimSigner> DkimSigner::create(DkimKey key) {
  if (auto error = check_name("domain", key.domain)) return *error;
  if (auto error = check_name("selector", key.selector)) return *error;
  auto lib = make_lib();
  if (!lib) return lib.error();
  auto pkey = read_key(key.private_key_pem);
  OPENSSL_cleanse(key.private_key_pem.data(), key.private_key_pem.size());
  if (!pkey) return pkey.error();
  auto algorithm = algorithm_for(pkey->get());
  if (!algorithm) return algorithm.error();
  auto pem = pkcs8_pem(pkey->get());
  if (!pem) return pem.error();

  auto state = std::make_unique<State>();
  state->domain = std::move(key.domain);
  state->selector = std::move(key.selector);
  state->key_pem = std::move(pem).value();
  state->algorithm = *algorithm;
  state->lib = std::move(lib).value();
  DkimSigner signer(std::move(state));
  const auto probe =
      signer.sign("From: dkim-self-test@" + signer.domain() + "\r\nSubject: self-test\r\n\r\nself-test\r\n");
  if (!probe) return init_failed("test signature failed: " + probe.error().detail);
  return signer;
}

Result<std::string> DkimSigner::sign(std::string_view message) const {
  if (message.empty()) return sign_failed("input", DKIM_STAT_SYNTAX, nullptr);
  const dkim_alg_t algorithm = DKIM_SIGN_RSASHA256;
  DKIM_STAT status = DKIM_STAT_OK;
  DkimHandle dkim(dkim_sign(state_->lib.get(), kJobId, nullptr,
                            reinterpret_cast<unsigned char*>(state_->key_pem.data()),
                            reinterpret_cast<const unsigned char*>(state_->selector.c_str()),
                            reinterpret_cast<const unsigned char*>(state_->domain.c_str()),
                            DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, algorithm, -1, &status));
  if (!dkim) return sign_failed("dkim_sign", status, nullptr);

  std::string buffer(message);
  status = dkim_chunk(dkim.get(), reinterpret_cast<unsigned char*>(buffer.data()), buffer.size());
  if (status != DKIM_STAT_OK) return sign_failed("dkim_chunk", status, dkim.get());
  status = dkim_chunk(dkim.get(), nullptr, 0);
  if (status != DKIM_STAT_OK) return sign_failed("dkim_chunk(end)", status, dkim.get());
  bool test_key = false;
  status = dkim_eom(dkim.get(), &test_key);
  if (status != DKIM_STAT_OK) return sign_failed("dkim_eom", status, dkim.get());

  unsigned char* value = nullptr;  // owned by the handle
  std::size_t size = 0;
  status = dkim_getsighdr_d(dkim.get(), kSignatureField.size() + 2, &value, &size);
  if (status != DKIM_STAT_OK) return sign_failed("dkim_getsighdr_d", status, dkim.get());
  // libopendkim folds with CRLF TAB and ends without a line break.
  return std::string(kSignatureField) + ": " + std::string(reinterpret_cast<const char*>(value), size) +
         "\r\n";
}

}  // namespace mtasts::policy::net
