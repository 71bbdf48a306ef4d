// libFuzzer target: normalize_domain and address_domain on arbitrary bytes.
// Checks the contract on every success: a lower-case LDH name of at most 253
// octets, no trailing dot, and normalising it again gives it back unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/domain.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  using mtasts::policy::normalize_domain;
  (void)mtasts::policy::address_domain(input);
  const auto result = normalize_domain(input);
  if (!result) {
    if (result.error().code.empty()) std::abort();
    return 0;
  }
  const std::string& name = result.value();
  if (name.empty() || name.size() > 253 || name.back() == '.') std::abort();
  for (const char c : name) {
    const bool ldh = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ldh) std::abort();
  }
  const auto again = normalize_domain(name);
  if (!again || again.value() != name) std::abort();
  return 0;
}
