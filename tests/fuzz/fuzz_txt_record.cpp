// libFuzzer target: the input is split on '\n' into TXT records and parsed
// as one RRset and record by record. Checks the contract on success: the id
// is 1-32 letters or digits, and a one-record RRset agrees with the record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/txt_record.h"

namespace {

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 32) return false;
  for (const char c : id) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using mtasts::policy::parse_txt_record;
  using mtasts::policy::parse_txt_rrset;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> records;
  for (;;) {
    const auto nl = input.find('\n');
    records.emplace_back(input.substr(0, nl));
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  const auto set = parse_txt_rrset(records);
  if (set && !valid_id(set.value().id)) std::abort();
  if (!set && set.error().code.empty()) std::abort();
  for (const std::string& record : records) {
    const auto one = parse_txt_record(record);
    if (one && !valid_id(one.value().id)) std::abort();
  }
  if (records.size() == 1) {
    const auto one = parse_txt_record(records.front());
    if (one.has_value() != set.has_value()) std::abort();
    if (one && one.value().id != set.value().id) std::abort();
  }
  return 0;
}
