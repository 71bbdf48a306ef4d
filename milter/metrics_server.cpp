// The Prometheus endpoint over libmicrohttpd; see the header.
#include "milter/metrics_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

#include "policy/engine/metrics.h"

namespace mtasts::milter {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

struct Address {
  sockaddr_storage storage{};
  bool ok = false;
};

Address parse_listen(const std::string& listen) {
  Address out;
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) return out;
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5) return out;
  const unsigned long port = std::stoul(port_text);
  if (port == 0 || port > 65535) return out;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<std::uint16_t>(port));
    out.ok = inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &in6->sin6_addr) == 1;
    return out;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<std::uint16_t>(port));
  out.ok = inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1;
  return out;
}

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

MetricsServer::MetricsServer(const std::string& listen, Gauges scrape_gauges)
    : impl_(std::make_unique<Impl>()) {
  impl_->gauges = std::move(scrape_gauges);
  const Address address = parse_listen(listen);
  if (!address.ok) throw std::runtime_error("metrics.listen '" + listen + "' is not ADDRESS:PORT");
  const unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                             (address.storage.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  // A scraper or two, not the world: few connections, short timeouts.
  impl_->daemon =
      MHD_start_daemon(flags, 0, nullptr, nullptr, &Impl::handle, impl_.get(), MHD_OPTION_SOCK_ADDR,
                       reinterpret_cast<const sockaddr*>(&address.storage), MHD_OPTION_CONNECTION_LIMIT, 16U,
                       MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
  if (impl_->daemon == nullptr) throw std::runtime_error("cannot listen for metrics on " + listen);
  policy::metrics::set_enabled(true);
}

MetricsServer::~MetricsServer() {
  policy::metrics::set_enabled(false);
  if (impl_->daemon != nullptr) MHD_stop_daemon(impl_->daemon);
}

std::string metrics_listen_problem(const std::string& listen) {
  if (listen.empty() || parse_listen(listen).ok) return "";
  return "must be ADDRESS:PORT (127.0.0.1:9489) or [ADDRESS]:PORT, a literal address and a port 1-65535";
}

}  // namespace mtasts::milter
