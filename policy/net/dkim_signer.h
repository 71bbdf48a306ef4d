// DKIM signing (RFC 6376) of report e-mail through libopendkim 2.11: RFC 8460
// §3 has receivers ignore a mailed TLS report without a valid DKIM signature
// of the reporting domain. Input is the message policy/tlsrpt_mail.h composes.
//
// The signature: v=1, a=rsa-sha256, c=relaxed/relaxed, the whole body (no l= tag, RFC
// 6376 §8.2), t= the signing time, no x=. h= lists, of the fields present, From,
// To, Subject, Date, Message-ID, MIME-Version, Content-Type, TLS-Report-Domain,
// TLS-Report-Submitter, TLS-Required and Auto-Submitted (RFC 8460 §5.3: the
// TLS-Report-* fields SHOULD be signed), each once.
//
// Keys accepted (checked with OpenSSL when the signer is made, so that a bad
// key fails at start-up, not at the first report):
// - RSA of 1024 to 4096 bits (RFC 8301 §3.2: signers MUST use at least 1024
//   and SHOULD use 2048; verifiers need only handle up to 4096);
// - not Ed25519 (RFC 8463), though this libopendkim can sign with it:
//   libopendkim 2.11 leaks about 0.9 KB of key objects per Ed25519 signature
//   (valgrind, LeakSanitizer; none for RSA), and receivers that predate RFC
//   8463 treat such a signature as absent;
// - unencrypted PEM only ("BEGIN PRIVATE KEY" or "BEGIN RSA PRIVATE KEY"): a
//   passphrase-protected key is refused, as libopendkim would prompt on the
//   terminal for it.
// Other key types (EC P-256, Ed448, DSA) have no DKIM algorithm libopendkim
// signs with; all of them, and Ed25519, give "dkim-key-invalid".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace mtasts::policy::net {

struct DkimKey {
  std::string domain;           // d=, the reporting domain in A-labels, e.g. "mx.example.net"
  std::string selector;         // s=; the key is published at <selector>._domainkey.<domain>
  std::string private_key_pem;  // the private key, PEM
};

enum class DkimAlgorithm { RsaSha256 };

class DkimSigner {
 public:
  // Checks the key and sets up one libopendkim library handle, then signs a
  // small test message so that every failure shows here. Errors:
  // "dkim-key-invalid" (PEM unreadable or encrypted, key type or size not
  // accepted above, domain or selector empty or holding characters other than
  // letters, digits, '-', '_' and '.'), "dkim-init-failed" (libopendkim could
  // not be set up or could not sign the test message). Thread-safe.
  static Result<DkimSigner> create(DkimKey key);

  ~DkimSigner();
  DkimSigner(DkimSigner&&) noexcept;
  DkimSigner& operator=(DkimSigner&&) noexcept;
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  // The "DKIM-Signature: ..." header field for `message`, folded, every line
  // ending in CRLF, to be put in front of it unchanged. `message` is a
  // complete RFC 5322 message with CRLF line ends (as compose_report_mail
  // makes it); after signing, the header fields listed above and the body
  // must reach the receiver unchanged except for white space.
  // Error "dkim-sign-failed" with libopendkim's result and error text.
  // Thread-safe: may be called concurrently on one signer; each call uses its
  // own libopendkim signing handle, and the shared library handle is only
  // read after create() (libopendkim's own milter shares one the same way).
  Result<std::string> sign(std::string_view message) const;

  DkimAlgorithm algorithm() const;
  const std::string& domain() const;    // d=
  const std::string& selector() const;  // s=

 private:
  struct State;
  explicit DkimSigner(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace mtasts::policy::net
