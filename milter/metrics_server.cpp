// The Prometheus endpoint over libmicrohttpd; see the header.
#include "milter/metrics_server.h"

#include <microhttpd.h>

#include <cstring>
#include <stdexcept>

#include "policy/engine/metrics.h"

namespace mtasts::milter {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

MHD_Result respond(MHD_Connection* connection, unsigned int status, const std::string& body) {
  MHD_Response* response =
      MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, kContentType);
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace

struct MetricsServer::Impl {
  Gauges gauges;
  MHD_Daemon* daemon = nullptr;

  static MHD_Result handle(void* self, MHD_Connection* connection, const char* url, const char* method,
                           const char* /*version*/, const char* /*upload*/, size_t* /*upload_size*/,
                           void** /*state*/) {
    auto* impl = static_cast<Impl*>(self);
    if (std::strcmp(method, "GET") != 0)
      return respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    if (std::strcmp(url, "/metrics") != 0) return respond(connection, MHD_HTTP_NOT_FOUND, "see /metrics\n");
    return respond(connection, MHD_HTTP_OK, policy::metrics::exposition(impl->gauges ? impl->gauges() : ""));
  }
};

MetricsServer::MetricsServer(int listen_fd, const std::string& address, Gauges scrape_gauges)
    : impl_(std::make_unique<Impl>()) {
  impl_->gauges = std::move(scrape_gauges);
  // A scraper or two, not the world: few connections, short timeouts.
  impl_->daemon =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, nullptr, nullptr, &Impl::handle,
                       impl_.get(), MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_CONNECTION_LIMIT, 16U,
                       MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
  // On failure the descriptor is left alone: libmicrohttpd closes it on some
  // of its failure paths, and a second close could hit another thread's new
  // descriptor. Startup ends here anyway.
  if (impl_->daemon == nullptr) throw std::runtime_error("cannot serve metrics on " + address);
  policy::metrics::set_enabled(true);
}

MetricsServer::~MetricsServer() {
  policy::metrics::set_enabled(false);
  if (impl_->daemon != nullptr) MHD_stop_daemon(impl_->daemon);
}

}  // namespace mtasts::milter
