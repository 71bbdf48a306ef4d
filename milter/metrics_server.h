// The Prometheus text endpoint (README "Metrics"): GET /metrics on
// metrics.listen (inet, inet6 or unix, opened before privileges are
// dropped), served by libmicrohttpd's own thread; anything else is
// 404. The counters are policy/engine/metrics.h's; `scrape_gauges` adds what
// is read at scrape time (policies in memory, sessions, queues), already in
// the text format. Off unless metrics.listen is set.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace mtasts::milter {

class MetricsServer {
 public:
  using Gauges = std::function<std::string()>;
  // Serves on `listen_fd`, a listening socket (open_listener: metrics.listen
  // in the milter's grammar), which it owns from here on (when it throws,
  // the descriptor's fate is libmicrohttpd's: a start-up error). `address`
  // names it in errors. Throws std::runtime_error.
  MetricsServer(int listen_fd, const std::string& address, Gauges scrape_gauges);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mtasts::milter
