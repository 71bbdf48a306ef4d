// A TLSRPT sink that keeps every session it is given, for tests that count
// which sessions the engine records (RFC 8460 §4.1: one per real attempt).
#pragma once

#include <mutex>
#include <vector>

#include "policy/tlsrpt.h"

namespace mtasts::testing {

using policy::TlsrptSession;
using policy::TlsrptSink;

class RecordingSink final : public TlsrptSink {
 public:
  void record(const TlsrptSession& session) override {
    std::lock_guard lock(mu_);
    sessions_.push_back(session);
  }
  std::vector<TlsrptSession> sessions() {
    std::lock_guard lock(mu_);
    return sessions_;
  }

 private:
  std::mutex mu_;
  std::vector<TlsrptSession> sessions_;
};

}  // namespace mtasts::testing
