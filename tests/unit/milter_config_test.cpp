// The configuration file: every value is checked when the file is read, so a
// bad file is refused at start-up or on reload (SIGUSR1) with a clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "milter/config.h"

namespace mtasts::milter {
namespace {

struct ConfigCase {
  std::string name;
  std::string toml;
  std::string error_code;  // "" when the file is accepted
  std::string error_mentions;
};

policy::Result<Config> load_text(const std::string& text) {
  const auto path =
      std::filesystem::temp_directory_path() / ("mtasts-config-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(path) << text;
  auto loaded = load_config(path.string());
  std::filesystem::remove(path);
  return loaded;
}

// Entries are stored as routing compares them, so "Internal.Example." or a
// U-label matches, and an upper-case transport does not put every
// recipient out of scope.
TEST(Config, ListEntriesAreNormalised) {
  const auto loaded = load_text(
      "[decision]\nexcluded_domains = ['Internal.Example.', 'b\u00fccher.example']\n"
      "trusted_relays = ['Relay.Example']\nsmtp_transports = ['SMTP', 'Relay']\n");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().detail;
  EXPECT_EQ(loaded->decision.excluded_domains,
            (std::vector<std::string>{"internal.example", "xn--bcher-kva.example"}));
  EXPECT_EQ(loaded->decision.trusted_relays, std::vector<std::string>{"relay.example"});
  EXPECT_EQ(loaded->decision.smtp_transports, (std::vector<std::string>{"smtp", "relay"}));
}

TEST(Config, ValuesAreCheckedWhenRead) {
  const std::vector<ConfigCase> cases{
      {"empty file", "", "config-empty", "sets nothing"},
      {"only comments and a section", "# cut short\n[milter]\n", "config-empty", "sets nothing"},
      {"socket mode", "[milter]\nsocket_mode = '0600'\n", "", ""},
      {"socket mode not octal", "[milter]\nsocket_mode = '0680'\n", "config-value", "milter.socket_mode"},
      {"socket mode too wide", "[milter]\nsocket_mode = '4777'\n", "config-value", "milter.socket_mode"},
      {"socket mode empty", "[milter]\nsocket_mode = ''\n", "config-value", "milter.socket_mode"},
      {"socket mode a number", "[milter]\nsocket_mode = 660\n", "config-value", "milter.socket_mode"},
      {"owner and group", "[milter]\nsocket_owner = 'nobody'\nsocket_group = 'postfix'\n", "", ""},
      {"daemon names", "[decision]\nnon_smtp_daemon_names = ['mtasts-local']\n", "", ""},
      {"daemon names not a list", "[decision]\nnon_smtp_daemon_names = 'x'\n", "config-value",
       "decision.non_smtp_daemon_names"},
      {"unknown key", "[milter]\nsocket_owners = 'x'\n", "config-key", "milter.socket_owners"},
      {"excluded domain invalid", "[decision]\nexcluded_domains = ['-bad-.example']\n", "config-value",
       "decision.excluded_domains has an invalid entry '-bad-.example'"},
      {"trusted relay an address literal", "[decision]\ntrusted_relays = ['[192.0.2.1]']\n", "config-value",
       "decision.trusted_relays"},
      {"empty transport", "[decision]\nsmtp_transports = ['']\n", "config-value", "decision.smtp_transports"},
      {"action misspelt", "[decision]\nenforce_action = 'tempfial'\n", "config-value",
       "decision.enforce_action must be one of tempfail|reject|quarantine|tag|off"},
      {"testing cannot tempfail", "[decision]\ntesting_action = 'tempfail'\n", "config-value",
       "decision.testing_action must be one of tag|off"},
      {"dane word", "[decision]\ndane = 'on'\n", "config-value",
       "decision.dane must be one of enforce|record|off"},
      {"dane not a string", "[decision]\ndane = true\n", "config-value", "decision.dane"},
      {"socketmap off", "[socketmap]\nsocket = ''\n", "", ""},
      {"socketmap on a unix socket", "[socketmap]\nsocket = 'unix:/run/mta-sts/socketmap.sock'\n", "", ""},
      {"socketmap on IPv6", "[socketmap]\nsocket = 'inet6:8461@::1'\n", "", ""},
      {"socketmap in Postfix's syntax", "[socketmap]\nsocket = 'inet:127.0.0.1:8461'\n", "config-value",
       "socketmap.socket 'inet:127.0.0.1:8461': the port must be 1-65535"},
      {"socketmap address not an IP", "[socketmap]\nsocket = 'inet:8461@localhost'\n", "config-value",
       "must be an IPv4 address"},
      {"socketmap relative path", "[socketmap]\nsocket = 'unix:sock'\n", "config-value", "absolute path"},
      {"socketmap map name with a space", "[socketmap]\nmap_names = ['post fix']\n", "config-value",
       "socketmap.map_names has an invalid entry 'post fix'"},
      {"socketmap deadline over Postfix's timeout", "[socketmap]\ndeadline_ms = 10000\n", "config-value",
       "socketmap.deadline_ms"},
      {"report settings", "[report]\ncontact_info = 'tlsrpt@MX.Example.NET'\ndkim_domain = 'example.net'\n",
       "", ""},
      {"report contact not an address", "[report]\ncontact_info = 'tlsrpt'\n", "config-value",
       "report.contact_info must be an address"},
      {"report contact with a space", "[report]\ncontact_info = 'tls rpt@example.net'\n", "config-value",
       "report.contact_info must be an address"},
      {"report sendmail relative", "[report]\nsendmail_command = ['sendmail', '-oi']\n", "config-value",
       "report.sendmail_command must start with the program's absolute path"},
      {"report sendmail empty", "[report]\nsendmail_command = []\n", "config-value",
       "report.sendmail_command must be a non-empty array"},
      {"tlsrpt bounds", "[tlsrpt]\nflush_at_aggregates = 5000\nmax_pending = 50000\n", "", ""},
      {"tlsrpt early flush too low", "[tlsrpt]\nflush_at_aggregates = 10\n", "config-value",
       "tlsrpt.flush_at_aggregates must be between 100 and 10000000"},
      {"syntax", "[milter\n", "config-syntax", ""},
      // Found by fuzz_milter_config: undefined behaviour (UBSan) before the fix.
      {"integer given as a huge float", "[dns]\ntimeout = 8.01e32\n", "config-value",
       "dns.timeout must be an integer"},
      {"integer given as a float", "[dns]\ntimeout = 5.0\n", "config-value",
       "dns.timeout must be an integer"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto loaded = load_text(c.toml);
    // The in-memory parser (the config fuzzer's entry point) agrees with the file reader.
    const auto parsed = parse_config(c.toml, "text.toml");
    if (c.error_code.empty()) {
      ASSERT_TRUE(loaded.has_value()) << loaded.error().detail;
      ASSERT_TRUE(parsed.has_value()) << parsed.error().detail;
      EXPECT_EQ(render_config(*parsed), render_config(*loaded));
      continue;
    }
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().code, c.error_code);
    EXPECT_NE(loaded.error().detail.find(c.error_mentions), std::string::npos) << loaded.error().detail;
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code, c.error_code);
    EXPECT_NE(parsed.error().detail.find(c.error_mentions), std::string::npos) << parsed.error().detail;
  }
}

TEST(Config, OwnershipAndListenerSettingsAreKept) {
  const auto loaded = load_text(
      "[milter]\nsocket = 'unix:/var/spool/postfix/mta-sts-milter/milter.sock'\nsocket_mode = '0660'\n"
      "socket_owner = 'nobody'\nsocket_group = 'postfix'\n[decision]\nnon_smtp_daemon_names = ['a', 'b']\n");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().detail;
  EXPECT_EQ(loaded->socket_owner, "nobody");
  EXPECT_EQ(loaded->socket_group, "postfix");
  EXPECT_EQ(loaded->decision.non_smtp_daemon_names, (std::vector<std::string>{"a", "b"}));
  const std::string shown = render_config(*loaded);
  EXPECT_NE(shown.find("socket_group = 'postfix'"), std::string::npos);
  EXPECT_NE(shown.find("non_smtp_daemon_names = ['a', 'b']"), std::string::npos);
}

// Action words are parsed once, when the file loads, and shown back as the
// same words (--print-config).
TEST(Config, ActionsAndDaneAreParsedWhenRead) {
  const Config defaults = *load_config("");
  EXPECT_EQ(defaults.decision.enforce_action, Action::Tempfail);
  EXPECT_EQ(defaults.decision.testing_action, Action::Continue);
  EXPECT_EQ(defaults.decision.error_action, Action::Continue);
  EXPECT_EQ(defaults.decision.dane, DaneMode::Enforce);
  const auto loaded = load_text(
      "[decision]\nenforce_action = 'reject'\ntesting_action = 'tag'\nnon_smtp_action = 'off'\n"
      "error_action = 'tempfail'\ndane = 'record'\n");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().detail;
  EXPECT_EQ(loaded->decision.enforce_action, Action::Reject);
  EXPECT_EQ(loaded->decision.testing_action, Action::Tag);
  EXPECT_EQ(loaded->decision.non_smtp_action, Action::Continue);
  EXPECT_EQ(loaded->decision.error_action, Action::Tempfail);
  EXPECT_EQ(loaded->decision.dane, DaneMode::Record);
  const std::string shown = render_config(*loaded);
  for (const char* line : {"enforce_action = 'reject'", "testing_action = 'tag'", "non_smtp_action = 'off'",
                           "error_action = 'tempfail'", "dane = 'record'"})
    EXPECT_NE(shown.find(line), std::string::npos) << line << "\n" << shown;
  const auto again = load_text(shown);
  ASSERT_TRUE(again.has_value()) << again.error().detail;
  EXPECT_EQ(render_config(*again), shown);
}

}  // namespace
}  // namespace mtasts::milter
