// encode_datagram / decode_datagram / the session mappings: libtlsrpt's
// datagrams (protocol version 1), byte for byte. The datagrams read here are
// written by hand from the format's documentation (../shared/REFERENCE.md):
// libtlsrpt writes `"key": "value"` for strings and `"key":N` for numbers,
// and left out "dpv" before it had one.
#include "policy/tlsrpt_datagram.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtasts::policy {
namespace {

constexpr std::int64_t kAt = 1'780'000'000;

// A certificate name mismatch on an sts policy, as libtlsrpt lays it out.
const std::string kLibtlsrptStsFailure =
    R"({"d": "example.com","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@example.com","policies":[)"
    R"({"policy-type":2,"policy-domain": "example.com",)"
    R"("policy-string":["version: STSv1","mode: enforce","mx: mx1.example.com","max_age: 86400"],)"
    R"("mx-host":["mx1.example.com"],)"
    R"("failure-details":[{"c":202,"s": "192.0.2.1","n": "mx1.example.com","h": "mx1.example.com",)"
    R"("r": "198.51.100.7","a": "https://example.com/why","f": "X509_V_ERR_HOSTNAME_MISMATCH"}],)"
    R"("t":1,"f":1}]})";

TlsrptDatagram decode_ok(const std::string& bytes) {
  auto result = decode_datagram(bytes);
  if (!result) {
    ADD_FAILURE() << "path \"" << result.error().path << "\": " << result.error().detail;
    return {};
  }
  return *result;
}

TEST(PolicyTlsrptDatagram, ReadsLibtlsrptLayout) {
  const TlsrptDatagram d = decode_ok(kLibtlsrptStsFailure);
  EXPECT_EQ(d.domain, "example.com");
  EXPECT_EQ(d.record, "v=TLSRPTv1; rua=mailto:tlsrpt@example.com");
  ASSERT_EQ(d.policies.size(), 1u);
  const DatagramPolicy& p = d.policies[0];
  EXPECT_EQ(p.type, DatagramPolicyType::Sts);
  EXPECT_EQ(p.domain, "example.com");
  EXPECT_EQ(p.strings, (std::vector<std::string>{"version: STSv1", "mode: enforce", "mx: mx1.example.com",
                                                 "max_age: 86400"}));
  EXPECT_EQ(p.mx_hosts, std::vector<std::string>{"mx1.example.com"});
  EXPECT_TRUE(p.delivery_failed);
  ASSERT_EQ(p.failures.size(), 1u);
  const DatagramFailure expected{ResultType::CertificateHostMismatch,
                                 "192.0.2.1",
                                 "mx1.example.com",
                                 "mx1.example.com",
                                 "198.51.100.7",
                                 "https://example.com/why",
                                 "X509_V_ERR_HOSTNAME_MISMATCH"};
  EXPECT_EQ(p.failures[0], expected);
}

TEST(PolicyTlsrptDatagram, FailureBecomesOneFailedSession) {
  const auto sessions = sessions_from_datagram(decode_ok(kLibtlsrptStsFailure), kAt);
  ASSERT_EQ(sessions.size(), 1u);
  const TlsrptSession& s = sessions[0];
  EXPECT_EQ(s.at, kAt);
  EXPECT_EQ(s.policy_type, "sts");
  EXPECT_EQ(s.policy_domain, "example.com");
  EXPECT_EQ(s.policy_string, "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400");
  EXPECT_EQ(s.mx_patterns, "mx1.example.com");
  EXPECT_FALSE(s.success);
  EXPECT_EQ(s.result_type, ResultType::CertificateHostMismatch);
  EXPECT_EQ(s.failure_reason_code, "X509_V_ERR_HOSTNAME_MISMATCH");
  EXPECT_EQ(s.sending_mta_ip, "192.0.2.1");
  EXPECT_EQ(s.receiving_mx_hostname, "mx1.example.com");
  EXPECT_EQ(s.receiving_ip, "198.51.100.7");
  EXPECT_EQ(s.additional_information, "https://example.com/why");
}

TEST(PolicyTlsrptDatagram, NoPolicyFoundSuccessWithVersionAndNoPolicyDomain) {
  const auto d =
      decode_ok(R"({"dpv": "1", "d": "Example.NET.", "pr": "v=TLSRPTv1; rua=https://r.example.net/t", )"
                R"("policies": [{"policy-type": 9, "t": 0, "f": 0}]})");
  ASSERT_EQ(d.policies.size(), 1u);
  EXPECT_EQ(d.domain, "example.net");
  EXPECT_EQ(d.policies[0].domain, "example.net");  // "d" stands in
  EXPECT_EQ(d.policies[0].type, DatagramPolicyType::NoPolicyFound);
  const auto sessions = sessions_from_datagram(d, kAt);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0].success);
  EXPECT_EQ(sessions[0].policy_type, "no-policy-found");
  EXPECT_EQ(sessions[0].policy_domain, "example.net");
}

TEST(PolicyTlsrptDatagram, DeliveredAfterTwoFailedMxIsTwoFailuresAndOneSuccess) {
  const auto d =
      decode_ok(R"({"d": "example.org","pr": "v=TLSRPTv1;rua=mailto:r@example.org","policies":[)"
                R"({"policy-type":1,"policy-domain": "example.org","policy-string":["3 1 1 AABB"],)"
                R"("mx-host":["mx.example.org"],"failure-details":[{"c":304,"n": "a.example.org"},)"
                R"({"c":201,"n": "b.example.org"}],"t":2,"f":0}]})");
  const auto sessions = sessions_from_datagram(d, kAt);
  ASSERT_EQ(sessions.size(), 3u);
  EXPECT_EQ(sessions[0].result_type, ResultType::TlsaInvalid);
  EXPECT_EQ(sessions[0].receiving_mx_hostname, "a.example.org");
  EXPECT_EQ(sessions[1].result_type, ResultType::StartTlsNotSupported);
  EXPECT_TRUE(sessions[2].success);
  EXPECT_EQ(sessions[2].policy_type, "tlsa");
  EXPECT_EQ(sessions[2].policy_string, "3 1 1 AABB");
}

TEST(PolicyTlsrptDatagram, FailedWithoutDetailIsOneUnspecifiedFailure) {
  const auto sessions = sessions_from_datagram(
      decode_ok(R"({"d":"example.com","pr":"","policies":[{"policy-type":2,"t":0,"f":1}]})"), kAt);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_FALSE(sessions[0].success);
  EXPECT_EQ(sessions[0].result_type, ResultType::ValidationFailure);
  EXPECT_EQ(sessions[0].failure_reason_code, "no-failure-detail");
}

TEST(PolicyTlsrptDatagram, EveryFailureCodeMapsBothWays) {
  const std::vector<std::pair<int, std::string_view>> codes = {{201, "starttls-not-supported"},
                                                               {202, "certificate-host-mismatch"},
                                                               {203, "certificate-not-trusted"},
                                                               {204, "certificate-expired"},
                                                               {205, "validation-failure"},
                                                               {301, "sts-policy-fetch-error"},
                                                               {302, "sts-policy-invalid"},
                                                               {303, "sts-webpki-invalid"},
                                                               {304, "tlsa-invalid"},
                                                               {305, "dnssec-invalid"},
                                                               {306, "dane-required"}};
  for (const auto& [code, name] : codes) {
    const auto type = result_type_from_failure_code(code);
    ASSERT_TRUE(type) << code;
    EXPECT_EQ(to_string(*type), name) << code;
    EXPECT_EQ(failure_code(*type), code);
  }
  for (const int unknown : {0, 200, 206, 300, 307, 9, -201})
    EXPECT_FALSE(result_type_from_failure_code(unknown));
}

TEST(PolicyTlsrptDatagram, WritesOurFailureByteForByte) {
  TlsrptSession s;
  s.at = kAt;
  s.policy_type = "sts";
  s.policy_domain = "example.com";
  s.policy_string = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 86400\r\n";
  s.mx_patterns = "mx1.example.com";
  s.result_type = ResultType::CertificateHostMismatch;
  s.failure_reason_code = "hostname-mismatch";
  s.sending_mta_ip = "192.0.2.1";
  s.receiving_mx_hostname = "mx1.example.com";
  s.receiving_ip = "198.51.100.7";
  EXPECT_EQ(encode_datagram(datagram_from_session(s, "v=TLSRPTv1; rua=mailto:t@example.com")),
            R"({"dpv":"1","d":"example.com","pr":"v=TLSRPTv1; rua=mailto:t@example.com","policies":[)"
            R"({"policy-type":2,"policy-domain":"example.com",)"
            R"("policy-string":["version: STSv1","mode: enforce","mx: mx1.example.com","max_age: 86400"],)"
            R"("mx-host":["mx1.example.com"],)"
            R"("failure-details":[{"c":202,"s":"192.0.2.1","n":"mx1.example.com","r":"198.51.100.7",)"
            R"("f":"hostname-mismatch"}],"t":1,"f":1}]})");
}

TEST(PolicyTlsrptDatagram, WritesOurSuccessByteForByte) {
  TlsrptSession s;
  s.policy_type = "tlsa";
  s.policy_domain = "dane.example";
  s.policy_string = "3 1 1 AABBCC";
  s.mx_patterns = "mx.dane.example";
  s.success = true;
  EXPECT_EQ(encode_datagram(datagram_from_session(s, "v=TLSRPTv1;rua=https://r.dane.example/")),
            R"({"dpv":"1","d":"dane.example","pr":"v=TLSRPTv1;rua=https://r.dane.example/","policies":[)"
            R"({"policy-type":1,"policy-domain":"dane.example","policy-string":["3 1 1 AABBCC"],)"
            R"("mx-host":["mx.dane.example"],"t":0,"f":0}]})");
}

TEST(PolicyTlsrptDatagram, OurDatagramsReadBackAsTheSameSessions) {
  TlsrptSession s;
  s.at = kAt;
  s.policy_type = "sts";
  s.policy_domain = "example.com";
  s.policy_string = "version: STSv1\nmode: testing\nmx: *.example.com\nmax_age: 600";
  s.mx_patterns = "*.example.com";
  s.result_type = ResultType::StsWebpkiInvalid;
  s.failure_reason_code = "certificate-expired";
  s.additional_information = "https://mta-sts.example.com/.well-known/mta-sts.txt";
  const auto back = sessions_from_datagram(decode_ok(encode_datagram(datagram_from_session(s, "r"))), kAt);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].policy_string, s.policy_string);
  EXPECT_EQ(back[0].mx_patterns, s.mx_patterns);
  EXPECT_EQ(back[0].result_type, s.result_type);
  EXPECT_EQ(back[0].failure_reason_code, s.failure_reason_code);
  EXPECT_EQ(back[0].additional_information, s.additional_information);
}

struct BadDatagram {
  std::string bytes;
  std::string path;
  std::string detail_part;
};

TEST(PolicyTlsrptDatagram, BadDatagramsNameTheirFirstBadField) {
  const std::string ok_policy = R"({"policy-type":2,"t":0,"f":0})";
  const auto with_policy = [](const std::string& policy) {
    return R"({"d":"example.com","pr":"x","policies":[)" + policy + "]}";
  };
  const std::vector<BadDatagram> table = {
      {"", "", "invalid JSON"},
      {"{\"d\":", "", "invalid JSON"},
      {"[1]", "", "expected a JSON object"},
      {std::string(20, '[') + std::string(20, ']'), "", "nested deeper"},
      {R"({"dpv":"2","d":"example.com","pr":"x","policies":[)" + ok_policy + "]}", "dpv", "version"},
      {R"({"dpv":1,"d":"example.com","pr":"x","policies":[)" + ok_policy + "]}", "dpv", "version"},
      {R"({"pr":"x","policies":[)" + ok_policy + "]}", "d", "missing"},
      {R"({"d":"exa mple.com","pr":"x","policies":[)" + ok_policy + "]}", "d", "not a domain"},
      {R"({"d":7,"pr":"x","policies":[)" + ok_policy + "]}", "d", "expected a string"},
      {R"({"d":"example.com","policies":[)" + ok_policy + "]}", "pr", "missing"},
      {R"({"d":"example.com","pr":"x","policies":[]})", "policies", "non-empty array"},
      {R"({"d":"example.com","pr":"x","policies":{}})", "policies", "non-empty array"},
      {R"({"d":"example.com","pr":"x"})", "policies", "non-empty array"},
      {with_policy("7"), "policies[0]", "expected an object"},
      {with_policy(R"({"t":0,"f":0})"), "policies[0].policy-type", "missing"},
      {with_policy(R"({"policy-type":3,"t":0,"f":0})"), "policies[0].policy-type", "unknown policy type 3"},
      {with_policy(R"({"policy-type":"sts","t":0,"f":0})"), "policies[0].policy-type", "expected an integer"},
      {with_policy(R"({"policy-type":2,"policy-domain":"a..b","t":0,"f":0})"), "policies[0].policy-domain",
       "not a domain"},
      {with_policy(R"({"policy-type":2,"policy-string":"mode: enforce","t":0,"f":0})"),
       "policies[0].policy-string", "expected an array"},
      {with_policy(R"({"policy-type":2,"mx-host":["a",3],"t":0,"f":0})"), "policies[0].mx-host[1]",
       "expected a string"},
      {with_policy(R"({"policy-type":2,"failure-details":[{"c":999}],"t":1,"f":1})"),
       "policies[0].failure-details[0].c", "unknown failure code 999"},
      {with_policy(R"({"policy-type":2,"failure-details":[{"n":"mx"}],"t":1,"f":1})"),
       "policies[0].failure-details[0].c", "missing"},
      {with_policy(R"({"policy-type":2,"failure-details":[{"c":201,"s":5}],"t":1,"f":1})"),
       "policies[0].failure-details[0].s", "expected a string"},
      {with_policy(R"({"policy-type":2,"failure-details":{},"t":0,"f":1})"), "policies[0].failure-details",
       "expected an array"},
      {with_policy(R"({"policy-type":2,"failure-details":[{"c":201}],"t":2,"f":1})"), "policies[0].t",
       "2 but 1 failure details"},
      {with_policy(R"({"policy-type":2,"f":0})"), "policies[0].t", "missing"},
      {with_policy(R"({"policy-type":2,"t":0,"f":2})"), "policies[0].f", "expected 0 or 1"},
      {with_policy(R"({"policy-type":2,"t":0})"), "policies[0].f", "missing"},
      {with_policy(R"({"policy-type":2,"t":0.0,"f":0})"), "policies[0].t", "expected an integer"},
  };
  for (const BadDatagram& bad : table) {
    const auto result = decode_datagram(bad.bytes);
    ASSERT_FALSE(result) << bad.bytes;
    EXPECT_EQ(result.error().path, bad.path) << bad.bytes << " -> " << result.error().detail;
    EXPECT_NE(result.error().detail.find(bad.detail_part), std::string::npos)
        << bad.bytes << " -> " << result.error().detail;
  }
}

TEST(PolicyTlsrptDatagram, TooManyPoliciesOrDetailsAreRefused) {
  std::string policies;
  for (std::size_t i = 0; i <= kMaxDatagramPolicies; ++i)
    policies += (i ? "," : "") + std::string(R"({"policy-type":2,"t":0,"f":0})");
  EXPECT_EQ(decode_datagram(R"({"d":"e.com","pr":"","policies":[)" + policies + "]}").error().path,
            "policies");
  std::string details;
  for (std::size_t i = 0; i <= kMaxDatagramFailures; ++i)
    details += (i ? "," : "") + std::string(R"({"c":201})");
  EXPECT_EQ(decode_datagram(R"({"d":"e.com","pr":"","policies":[{"policy-type":2,"failure-details":[)" +
                            details + R"(],"t":1001,"f":1}]})")
                .error()
                .path,
            "policies[0].failure-details");
}

TEST(PolicyTlsrptDatagram, UnknownKeysAndNullsAreIgnored) {
  const auto d =
      decode_ok(R"({"d":"example.com","pr":"x","x-new":{"a":[1]},"policies":[)"
                R"({"policy-type":2,"policy-domain":null,"mx-host":null,"later":true,"t":0,"f":0}]})");
  ASSERT_EQ(d.policies.size(), 1u);
  EXPECT_EQ(d.policies[0].domain, "example.com");
  EXPECT_TRUE(d.policies[0].mx_hosts.empty());
}

}  // namespace
}  // namespace mtasts::policy
