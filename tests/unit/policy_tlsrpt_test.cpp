// RFC 8460 §4.3 result-type strings.
#include "policy/tlsrpt.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

struct Case {
  ResultType type;
  std::string text;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {ResultType::StartTlsNotSupported, "starttls-not-supported"},
      {ResultType::CertificateHostMismatch, "certificate-host-mismatch"},
      {ResultType::CertificateExpired, "certificate-expired"},
      {ResultType::CertificateNotTrusted, "certificate-not-trusted"},
      {ResultType::ValidationFailure, "validation-failure"},
      {ResultType::TlsaInvalid, "tlsa-invalid"},
      {ResultType::DnssecInvalid, "dnssec-invalid"},
      {ResultType::DaneRequired, "dane-required"},
      {ResultType::StsPolicyFetchError, "sts-policy-fetch-error"},
      {ResultType::StsPolicyInvalid, "sts-policy-invalid"},
      {ResultType::StsWebpkiInvalid, "sts-webpki-invalid"},
  };
  return all;
}

TEST(PolicyTlsrpt, ToStringTable) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(to_string(c.type), c.text);
  }
}

TEST(PolicyTlsrpt, FromStringRoundTrip) {
  std::set<std::string> seen;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.text);
    const std::optional<ResultType> back = result_type_from_string(c.text);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, c.type);
    EXPECT_TRUE(seen.insert(std::string(to_string(c.type))).second) << "duplicate string";
  }
}

TEST(PolicyTlsrpt, FromStringRejects) {
  const std::vector<std::string> bad = {
      "",
      "STARTTLS-NOT-SUPPORTED",
      "Sts-Policy-Invalid",
      "starttls_not_supported",
      " sts-policy-invalid",
      "sts-policy-invalid ",
      "sts-policy-invalid\n",
      std::string("sts-policy-invalid\0", 19),
      "sts-policy",
      "sts-policy-invalid-x",
      "success",
      "unknown",
      "certificate-host-mismatch,",
  };
  for (const std::string& text : bad) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(result_type_from_string(text).has_value());
  }
}

}  // namespace
}  // namespace mtasts::policy
