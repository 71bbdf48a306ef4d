// libFuzzer target: the TLSRPT inputs that come from strangers (RFC 8460):
// a `_smtp._tls` TXT record (§3), a report someone sent us (§4.4, maybe
// gzipped), and a libtlsrpt datagram from a local MTA (README "TLSRPT
// datagrams"). The first byte picks the parser (mod 3); the rest is the input.
// Contract checked: no crash, no exception escapes, every error has a code
// (record) or a message (report), a parsed record has at least one usable
// URI, a decompressed report stays within its cap, and a read report renders
// as text and JSON; a decoded datagram encodes and decodes back to itself,
// and its sessions name a domain and one result each.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "policy/gzip.h"
#include "policy/tlsrpt_datagram.h"
#include "policy/tlsrpt_record.h"
#include "policy/tlsrpt_report_reader.h"

namespace {

constexpr std::size_t kCap = 1 << 20;

void fuzz_record(std::string_view text) {
  const auto record = mtasts::policy::parse_tlsrpt_record(text);
  if (!record) {
    if (record.error().code.empty()) std::abort();
    return;
  }
  if (record->rua.empty()) std::abort();
}

void fuzz_report(std::string_view bytes) {
  std::string text(bytes);
  if (mtasts::policy::looks_gzipped(bytes)) {
    auto json = mtasts::policy::gzip_decompress(bytes, kCap);
    if (!json) {
      if (json.error().code.empty()) std::abort();
      return;
    }
    if (json->size() > kCap) std::abort();
    text = std::move(json).value();
  }
  const auto read = mtasts::policy::read_received_report(text);
  if (const auto* error = std::get_if<mtasts::policy::ReportReadError>(&read)) {
    if (error->message.empty()) std::abort();
    return;
  }
  const auto& report = std::get<mtasts::policy::ReceivedReport>(read);
  if (mtasts::policy::received_report_text(report).empty()) std::abort();
  if (mtasts::policy::received_report_json(report).empty()) std::abort();
}

void fuzz_datagram(std::string_view bytes) {
  const auto datagram = mtasts::policy::decode_datagram(bytes);
  if (!datagram) {
    if (datagram.error().detail.empty()) std::abort();
    return;
  }
  const auto again = mtasts::policy::decode_datagram(mtasts::policy::encode_datagram(*datagram));
  if (!again || !(*again == *datagram)) std::abort();
  for (const auto& session : mtasts::policy::sessions_from_datagram(*datagram, 0)) {
    if (session.policy_domain.empty() || session.success == session.result_type.has_value()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      fuzz_report(input);
      break;
    case 1:
      fuzz_record(input);
      break;
    default:
      fuzz_datagram(input);
  }
  return 0;
}
