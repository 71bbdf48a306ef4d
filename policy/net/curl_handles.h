// libcurl handles as RAII types, and the one process-wide curl_global_init,
// for the two libcurl clients of policy/net (the policy fetcher, the report
// poster). Internal to policy/net.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <optional>

namespace mtasts::policy::net {

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init is not thread-safe: one call for the process, whichever
// client starts first.
inline CURLcode curl_global_once() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return result;
}

// Applies options to a handle until libcurl refuses one; failed() names it.
class CurlOptions {
 public:
  explicit CurlOptions(CURL* handle) : handle_(handle) {}
  template <class T>
  void set(CURLoption option, T value) {
    if (!failed_ && curl_easy_setopt(handle_, option, value) != CURLE_OK) failed_ = option;
  }
  std::optional<CURLoption> failed() const { return failed_; }

 private:
  CURL* handle_;
  std::optional<CURLoption> failed_;
};

}  // namespace mtasts::policy::net
