// The Prometheus text endpoint (README "Metrics"): GET /metrics on
// metrics.listen, served by libmicrohttpd's own thread; anything else is
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
  // `listen` is "ADDRESS:PORT" (IPv4) or "[ADDRESS]:PORT" (IPv6). Throws
  // std::runtime_error naming the address when it cannot listen.
  MetricsServer(const std::string& listen, Gauges scrape_gauges);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "ADDRESS:PORT" or "[ADDRESS]:PORT" with a literal address and a port
// 1..65535; "" when valid, else why not (config checks).
std::string metrics_listen_problem(const std::string& listen);

}  // namespace mtasts::milter
