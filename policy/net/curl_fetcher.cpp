// HTTPS policy fetch, RFC 8461 §3.3 (certificate names per §4.2).
//
// Each fetch uses its own easy handle, so nothing is shared between threads
// except libcurl's global state, initialised once. The callbacks below are
// called from C: each catches everything and reports failure by value.
#include "policy/net/curl_fetcher.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "policy/ascii.h"
#include "policy/cert_name.h"
#include "policy/net/curl_handles.h"
#include "policy/net/trust_anchors.h"
#include "policy/policy.h"
#include "policy/reason.h"

namespace mtasts::policy::net {
namespace {

// policy/cert_name.h promises that OpenSSL checks names exactly as
// cert_name_matches does; these are the flags that make that true.
static_assert(kOpenSslHostCheckFlags ==
                  (X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS),
              "policy::kOpenSslHostCheckFlags must equal the OpenSSL §4.2 flags");

constexpr const char* kUserAgent = "mta-sts-milter/0.1";
constexpr const char* kPolicyPath = "/.well-known/mta-sts.txt";

// State one transfer shares with its callbacks.
struct Transfer {
  CURL* handle = nullptr;
  X509_STORE* trust = nullptr;  // the fetcher's shared trust anchors
  std::string host;             // mta-sts.<domain>, the §3.3 Policy Host
  std::string body;
  bool headers_checked = false;
  std::optional<FetchError> header_error;  // status or Content-Type refused before the body
  bool too_large = false;
  bool callback_failed = false;
};

FetchError make_error(ResultType type, std::string reason, std::string detail, bool temporary) {
  return FetchError{type, std::move(reason), std::move(detail), temporary};
}

FetchError fetch_error(std::string reason, std::string detail, bool temporary = false) {
  return make_error(ResultType::StsPolicyFetchError, std::move(reason), std::move(detail), temporary);
}

// §3.3: only 200 counts and redirects are never followed. 5xx and 429 say
// "try later", which the engine's back-off treats differently.
std::optional<FetchError> check_status(long status) {
  if (status == 200) return std::nullopt;
  if (status >= 300 && status < 400) {
    return fetch_error("redirect", "HTTP " + std::to_string(status) + " not followed");
  }
  const bool temporary = status >= 500 || status == 429;
  return fetch_error("http-" + std::to_string(status), "HTTP status " + std::to_string(status), temporary);
}

bool iequals(std::string_view a, std::string_view b) { return ascii_iequals(a, b); }

// §3.3 "text/plain"; the media type is case-insensitive (RFC 9110 §8.3.1) and
// parameters such as charset are allowed.
bool is_text_plain(const char* content_type) {
  if (content_type == nullptr) return false;
  std::string_view value(content_type);
  value = value.substr(0, value.find(';'));
  const auto first = value.find_first_not_of(" \t");
  if (first == std::string_view::npos) return false;
  const auto last = value.find_last_not_of(" \t");
  return iequals(value.substr(first, last - first + 1), "text/plain");
}

std::optional<FetchError> check_headers(CURL* handle) {
  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  if (auto error = check_status(status)) return error;
  const char* content_type = nullptr;
  curl_easy_getinfo(handle, CURLINFO_CONTENT_TYPE, &content_type);
  if (!is_text_plain(content_type)) {
    // The server's text, so bounded before it reaches a log line.
    const std::string_view shown = content_type ? content_type : "missing";
    return fetch_error("content-type", "Content-Type " + std::string(shown.substr(0, 80)));
  }
  return std::nullopt;
}

// Refuses the body as soon as the headers are wrong (a redirect or error page
// is never read) or the body would pass kMaxPolicyBytes, whatever the
// Content-Length said.
size_t write_body(char* data, size_t size, size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  try {
    if (!transfer->headers_checked) {
      transfer->header_error = check_headers(transfer->handle);
      transfer->headers_checked = true;
    }
    if (transfer->header_error) return 0;
    const size_t bytes = size * count;
    if (transfer->body.size() + bytes > kMaxPolicyBytes) {
      transfer->too_large = true;
      return 0;
    }
    transfer->body.append(data, bytes);
    return bytes;
  } catch (...) {
    transfer->callback_failed = true;
    return 0;
  }
}

// §3.3 / §4.2: the Policy Host must be a subjectAltName dNSName, never the
// subject CN, with no partial-label wildcards. libcurl's own post-handshake
// check falls back to the CN, so OpenSSL is told to check the name itself
// during chain verification with the stricter flags.
CURLcode install_host_check(CURL* /*handle*/, void* ssl_ctx, void* user) noexcept {
  try {
    const auto* transfer = static_cast<const Transfer*>(user);
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(static_cast<SSL_CTX*>(ssl_ctx));
    X509_VERIFY_PARAM_set_hostflags(param, kOpenSslHostCheckFlags);
    if (X509_VERIFY_PARAM_set1_host(param, transfer->host.c_str(), transfer->host.size()) != 1) {
      return CURLE_SSL_CERTPROBLEM;
    }
    // The anchors read once (CurlFetcher): libcurl was told to load none.
    SSL_CTX_set1_cert_store(static_cast<SSL_CTX*>(ssl_ctx), transfer->trust);
    return CURLE_OK;
  } catch (...) {
    return CURLE_SSL_CERTPROBLEM;
  }
}

// "host:port:addr1,addr2" for CURLOPT_RESOLVE; only well-formed literals from
// our own lookup are used, IPv6 in brackets. nullopt when none is usable.
std::optional<std::string> resolve_entry(const std::string& host, int port,
                                         std::span<const std::string> addresses) {
  std::string list;
  for (const auto& address : addresses) {
    unsigned char buffer[sizeof(in6_addr)];
    std::string literal;
    if (inet_pton(AF_INET, address.c_str(), buffer) == 1) {
      literal = address;
    } else if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
      literal = "[" + address + "]";
    } else {
      continue;
    }
    list += (list.empty() ? "" : ",") + literal;
  }
  if (list.empty()) return std::nullopt;
  return host + ":" + std::to_string(port) + ":" + list;
}

std::string verify_reason(long verify_result) {
  switch (verify_result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "cert-expired";
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return "cert-host-mismatch";
    default:
      return "cert-untrusted";  // unknown issuer, self-signed, bad chain or signature
  }
}

// RFC 8460 §4.3.2.2: only a failed PKIX check (libcurl's
// PEER_FAILED_VERIFICATION, with OpenSSL's verify result kept) is
// sts-webpki-invalid, and it is a fact about the domain. A handshake that
// never got that far -- a reset, a plain-HTTP answer, no common protocol --
// says nothing about the policy: sts-policy-fetch-error, temporary, so it is
// never taken for a definite "no policy". A bad CA file is our own fault.
FetchError tls_error(CURLcode rc, long verify_result, const char* curl_message) {
  if (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM) {
    return fetch_error(std::string(reason::kLocalTlsSetup), curl_message, true);
  }
  if (rc != CURLE_PEER_FAILED_VERIFICATION) {
    return fetch_error(std::string(reason::kTlsHandshake), curl_message, true);
  }
  if (verify_result == X509_V_OK || verify_result == X509_V_ERR_UNSPECIFIED) {
    // OpenSSL accepted the chain and the name, so libcurl's own host check
    // after the handshake refused it.
    return make_error(ResultType::StsWebpkiInvalid, "cert-host-mismatch", curl_message, false);
  }
  return make_error(ResultType::StsWebpkiInvalid, verify_reason(verify_result),
                    X509_verify_cert_error_string(verify_result), false);
}

std::optional<FetchError> classify(CURLcode rc, const Transfer& transfer, const char* message) {
  if (transfer.header_error) return transfer.header_error;
  if (rc == CURLE_OK) return check_headers(transfer.handle);  // e.g. an empty body
  // A Content-Length over MAXFILESIZE fails before the body: still judge the
  // status first so a large 404 page reads "http-404".
  long status = 0;
  curl_easy_getinfo(transfer.handle, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0 && status != 200) return check_status(status);
  if (transfer.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return fetch_error("too-large", "policy body over " + std::to_string(kMaxPolicyBytes) + " bytes");
  }
  long connect_code = 0;  // a configured proxy's answer to CONNECT
  curl_easy_getinfo(transfer.handle, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  if (connect_code != 0 && connect_code != 200) {
    return fetch_error("proxy", message, true);
  }
  long verify_result = X509_V_OK;
  curl_easy_getinfo(transfer.handle, CURLINFO_SSL_VERIFYRESULT, &verify_result);
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return fetch_error("timeout", message, true);
    case CURLE_COULDNT_CONNECT:
      return fetch_error("connect", message, true);
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_PROXY:
      return fetch_error("proxy", message, true);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return tls_error(rc, verify_result, message);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return fetch_error("transfer", message, true);
    default:
      return fetch_error("fetch", message, false);
  }
}

std::optional<CURLoption> configure(const CurlFetcherConfig& config, Transfer& transfer,
                                    const std::string& url, curl_slist* resolve, curl_slist* headers,
                                    char* error_buffer) {
  CurlOptions o(transfer.handle);
  o.set(CURLOPT_URL, url.c_str());
  o.set(CURLOPT_PROTOCOLS_STR, "https");
  o.set(CURLOPT_REDIR_PROTOCOLS_STR, "https");
  o.set(CURLOPT_FOLLOWLOCATION, 0L);
  o.set(CURLOPT_MAXREDIRS, 0L);
  o.set(CURLOPT_NOSIGNAL, 1L);
  o.set(CURLOPT_USERAGENT, kUserAgent);
  o.set(CURLOPT_HTTPHEADER, headers);
  o.set(CURLOPT_RESOLVE, resolve);
  // An empty proxy string also makes libcurl ignore the *_proxy variables.
  o.set(CURLOPT_PROXY, config.proxy.c_str());
  o.set(CURLOPT_SSL_VERIFYPEER, 1L);
  o.set(CURLOPT_SSL_VERIFYHOST, 2L);
  o.set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  // No file for libcurl to parse per connection: install_host_check()
  // gives the context the fetcher's store.
  o.set(CURLOPT_CAINFO, static_cast<const char*>(nullptr));
  o.set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  o.set(CURLOPT_SSL_CTX_FUNCTION, &install_host_check);
  o.set(CURLOPT_SSL_CTX_DATA, static_cast<void*>(&transfer));
  o.set(CURLOPT_TIMEOUT, config.timeout_seconds);
  o.set(CURLOPT_CONNECTTIMEOUT, config.connect_timeout_seconds);
  o.set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxPolicyBytes));
  o.set(CURLOPT_WRITEFUNCTION, &write_body);
  o.set(CURLOPT_WRITEDATA, static_cast<void*>(&transfer));
  o.set(CURLOPT_ERRORBUFFER, error_buffer);
  return o.failed();
}

void log_fetch(const std::string& domain, long status, std::string_view reason, size_t bytes,
               std::chrono::steady_clock::time_point started) {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  spdlog::debug("fetch domain={} status={} reason={} bytes={} elapsed_ms={}", domain, status, reason, bytes,
                elapsed.count());
}

Result<FetchedBody, FetchError> perform(const CurlFetcherConfig& config, X509_STORE* trust,
                                        const std::string& host, const std::string& resolve_line,
                                        long& status) {
  CurlHandle handle(curl_easy_init());
  if (!handle) return fetch_error("curl-init", "curl_easy_init failed");
  Transfer transfer;
  transfer.handle = handle.get();
  transfer.trust = trust;
  transfer.host = host;
  Slist resolve(curl_slist_append(nullptr, resolve_line.c_str()));
  Slist headers(curl_slist_append(nullptr, "Cache-Control: no-cache"));
  if (!resolve || !headers) return fetch_error("curl-init", "curl_slist_append failed");
  const std::string url = "https://" + host + ":" + std::to_string(config.port) + kPolicyPath;
  char error_buffer[CURL_ERROR_SIZE] = {};
  if (const auto option = configure(config, transfer, url, resolve.get(), headers.get(), error_buffer)) {
    return fetch_error("curl-setup", "libcurl refused option " + std::to_string(*option));
  }
  const CURLcode rc = curl_easy_perform(handle.get());
  curl_easy_getinfo(handle.get(), CURLINFO_RESPONSE_CODE, &status);
  const char* message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
  if (transfer.callback_failed) return fetch_error("fetch", "write callback failed");
  if (auto error = classify(rc, transfer, message)) return *std::move(error);
  return FetchedBody{std::move(transfer.body)};
}

}  // namespace

CurlFetcher::CurlFetcher(CurlFetcherConfig config) : config_(std::move(config)) {
  trust_ = std::make_unique<SharedTrustStore>(config_.ca_file, "HTTPS CA file");
  // Failure here leaves every fetch failing with "curl-init": the daemon can
  // still run on cached policies.
  if (curl_global_once() != CURLE_OK) spdlog::error("curl_global_init failed");
}

CurlFetcher::~CurlFetcher() = default;

Result<FetchedBody, FetchError> CurlFetcher::fetch(const std::string& policy_domain,
                                                   std::span<const std::string> addresses) {
  const auto started = std::chrono::steady_clock::now();
  const std::string host = "mta-sts." + policy_domain;
  Result<FetchedBody, FetchError> result =
      fetch_error(std::string(reason::kDnsNoAddress), "no usable address for " + host);
  long status = 0;
  if (curl_global_once() != CURLE_OK) {
    result = fetch_error("curl-init", "curl_global_init failed");
  } else if (const auto resolve_line = resolve_entry(host, config_.port, addresses)) {
    result = perform(config_, trust_->get(), host, *resolve_line, status);
  }
  if (result) {
    log_fetch(policy_domain, status, "ok", result->body.size(), started);
  } else {
    log_fetch(policy_domain, status, result.error().reason, 0, started);
  }
  return result;
}

}  // namespace mtasts::policy::net
