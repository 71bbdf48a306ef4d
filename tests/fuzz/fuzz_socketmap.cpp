// libFuzzer target for policy/socketmap.h. The first byte chooses the
// reader's maximum (Postfix's 10,000 or a small one, to reach the length
// limit cheaply) and seeds the chunk sizes; the rest is the byte stream a
// socketmap client sent. Checks:
// - chunking never matters: the stream read in random pieces gives the same
//   payloads and the same error as read in one piece;
// - between feeds the reader holds at most one unfinished frame;
// - every payload parses as a request or fails with a code, and a parsed
//   request is exactly "NAME KEY" within the documented limits;
// - encode_netstring(payload) reads back as that payload;
// - every reply format_reply() builds from fuzzed text is one netstring of
//   at most Postfix's size, without control bytes;
// - answer data built from a payload read as a policy body is single-line,
//   bounded and has one `{ ... }` per policy line.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/socketmap.h"

namespace {

using namespace mtasts::policy;

void check(bool ok) {
  if (!ok) std::abort();
}

bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}
bool has_control(std::string_view s) { return std::any_of(s.begin(), s.end(), is_control); }

std::size_t digit_count(std::size_t n) { return std::to_string(n).size(); }

struct Drained {
  std::vector<std::string> payloads;
  std::optional<NetstringError> error;
  bool operator==(const Drained&) const = default;
};

void drain(NetstringReader& reader, Drained& out, std::size_t max) {
  for (;;) {
    const auto next = reader.next();
    if (!next) {
      out.error = next.error();
      check(reader.failed() && reader.buffered_bytes() == 0);
      return;
    }
    if (!next.value()) {
      check(reader.buffered_bytes() <= max + digit_count(max) + 1);
      return;
    }
    check(next.value()->size() <= max);
    out.payloads.push_back(*next.value());
  }
}

Drained read_whole(std::string_view stream, std::size_t max) {
  NetstringReader reader(max);
  reader.feed(stream);
  Drained out;
  drain(reader, out, max);
  return out;
}

// Chunk sizes 1-64 from a xorshift seeded by the input's first byte.
Drained read_in_chunks(std::string_view stream, std::size_t max, std::uint32_t seed) {
  NetstringReader reader(max);
  Drained out;
  std::uint32_t state = seed * 2654435761u + 1;
  while (!stream.empty() && !out.error) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t chunk = std::min<std::size_t>(1 + state % 64, stream.size());
    reader.feed(stream.substr(0, chunk));
    stream.remove_prefix(chunk);
    drain(reader, out, max);
  }
  return out;
}

void check_request(std::string_view payload) {
  const auto request = parse_request(payload);
  if (!request) {
    check(!to_string(request.error()).empty());
    return;
  }
  const SocketmapRequest& r = request.value();
  check(!r.map_name.empty() && r.map_name.size() <= kMaxMapNameBytes);
  check(!r.key.empty() && r.key.size() <= kMaxKeyBytes);
  check(r.map_name.find(' ') == std::string::npos && r.key.find(' ') == std::string::npos);
  check(!has_control(r.map_name) && !has_control(r.key));
  check(r.map_name + " " + r.key == payload);
}

void check_round_trip(const std::string& payload) {
  NetstringReader reader(payload.size());
  reader.feed(encode_netstring(payload));
  const auto first = reader.next();
  check(first.has_value() && first.value().has_value() && *first.value() == payload);
  const auto second = reader.next();
  check(second.has_value() && !second.value().has_value());
}

void check_reply(SocketmapStatus status, std::string_view text) {
  const std::string frame = format_reply(status, text);
  const Drained read = read_whole(frame, kPostfixMaxReplyBytes);
  check(!read.error && read.payloads.size() == 1);
  const std::string& reply = read.payloads.front();
  check(encode_netstring(reply) == frame);
  check(!has_control(reply));
  const std::size_t space = reply.find(' ');
  check(space != std::string::npos);
  const std::string_view word = std::string_view(reply).substr(0, space);
  if (status == SocketmapStatus::Ok) {
    check(word == "OK" || word == "TEMP");
    return;
  }
  check(word == to_string(status));
  if (status == SocketmapStatus::NotFound) check(reply == "NOTFOUND ");
  check(reply.size() <= space + 1 + kMaxReasonBytes);
  check(std::all_of(reply.begin(), reply.end(), [](char c) { return c >= 0x20 && c < 0x7f; }));
}

// The payload as a policy body: its lines, its "mx:" values as patterns.
StsPolicyFacts facts_from(std::string_view body, std::string domain) {
  StsPolicyFacts facts{std::move(domain), split_policy_lines(body), {}};
  for (const std::string& line : facts.policy_lines) {
    if (line.rfind("mx:", 0) != 0) continue;
    const std::size_t start = line.find_first_not_of(" \t", 3);
    facts.mx_patterns.push_back(start == std::string::npos ? "" : line.substr(start));
  }
  return facts;
}

void check_answer(std::string_view body, std::string domain, std::uint8_t selector) {
  const StsPolicyFacts facts = facts_from(body, std::move(domain));
  const std::optional<ResultType> failure =
      selector % 3 == 0 ? std::nullopt : std::optional<ResultType>(static_cast<ResultType>(selector % 11));
  const auto data = sts_answer_data(facts, TlsrptAttributes::Append, failure);
  if (!data) {
    check(!to_string(data.error()).empty());
  } else {
    const std::string& d = data.value();
    check(d.size() <= kMaxOkDataBytes && !has_control(d));
    check(d.rfind("secure match=", 0) == 0);
    const auto opens = static_cast<std::size_t>(std::count(d.begin(), d.end(), '{'));
    const auto closes = static_cast<std::size_t>(std::count(d.begin(), d.end(), '}'));
    check(opens == facts.policy_lines.size() && closes == opens);
    check(format_reply(SocketmapStatus::Ok, d) == encode_netstring("OK " + d));
  }
  const auto none = tlsrpt_no_policy_attributes(facts.domain, failure);
  if (none) check(!has_control(none.value()) && none.value().rfind("policy_type=no-policy-found ", 0) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t max = control & 1 ? kPostfixMaxRequestBytes : control >> 2;

  const Drained whole = read_whole(stream, max);
  check(read_in_chunks(stream, max, control) == whole);

  for (const std::string& payload : whole.payloads) {
    check_request(payload);
    check_round_trip(payload);
    for (const auto status : {SocketmapStatus::Ok, SocketmapStatus::NotFound, SocketmapStatus::Temp,
                              SocketmapStatus::Timeout, SocketmapStatus::Perm}) {
      check_reply(status, payload);
    }
    const auto request = parse_request(payload);
    check_answer(payload, request ? request.value().key : "example.com", control);
  }
  return 0;
}
