#include "milter/cli.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "milter/cli_commands.h"
#include "milter/daemon.h"
#include "milter/services.h"
#include "milter/version.h"
#include "policy/logfmt.h"

namespace mtasts::milter {
namespace {

void set_up_logging(const Config& config) {
  std::shared_ptr<spdlog::logger> logger;
  if (config.log_syslog) {
    logger = spdlog::syslog_logger_mt("mta-sts-milter", "mta-sts-milter", LOG_PID, LOG_MAIL);
    logger->set_pattern("%v");  // syslog adds time, host and level
  } else {
    logger = spdlog::stderr_logger_mt("mta-sts-milter");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S%z %l %v");
  }
  logger->set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_default_logger(logger);
}

struct Options {
  std::string config_path;
  bool print_config = false;
  bool json = false;
  std::string domain;
  std::string file;
  std::vector<std::string> mx_hosts;
  std::vector<std::string> records;
  CacheArgs cache;
  ReportArgs report;
};

void add_cache_commands(CLI::App& app, Options& o) {
  auto* cache = app.add_subcommand("cache", "inspect and seed the policy cache");
  cache->require_subcommand(1);
  cache->add_subcommand("list", "one line per cached policy");
  cache->add_subcommand("show", "the cached policy of DOMAIN as JSON")
      ->add_option("DOMAIN", o.cache.operand)
      ->required();
  cache->add_subcommand("forget", "remove DOMAIN from the cache")
      ->add_option("DOMAIN", o.cache.operand)
      ->required();
  cache->add_subcommand("import", "seed the cache from JSON lines (FILE or -)")
      ->add_option("FILE", o.cache.operand)
      ->required();
  cache->add_subcommand("export", "print every cached policy as JSON lines");
  cache->add_subcommand("refresh", "run one pass of the background refresher")
      ->add_flag("--force", o.cache.force, "re-fetch every cached policy, due or not");
}

void add_report_commands(CLI::App& app, Options& o) {
  auto* report = app.add_subcommand("report", "TLSRPT reports (RFC 8460): build, send, inspect");
  report->require_subcommand(1);
  auto* build = report->add_subcommand("build", "build (and store) the reports of a day that is over");
  build->add_option("--day", o.report.day, "YYYY-MM-DD (UTC; default: yesterday)");
  build->add_option("--out", o.report.out_dir, "also write the .json.gz files into this folder");
  auto* send = report->add_subcommand("send", "build yesterday's reports and send what is due");
  send->add_option("--day", o.report.day, "only this day's reports (YYYY-MM-DD)");
  send->add_flag("--now", o.report.now, "ignore report.send_window");
  auto* status = report->add_subcommand("status", "reports and the state of their deliveries");
  status->add_option("--day", o.report.day, "only this day (YYYY-MM-DD)");
  status->add_flag("--json", o.report.json, "print JSON lines");
  auto* show = report->add_subcommand("show", "a summary per policy domain of a day's reports");
  show->add_option("--day", o.report.day, "YYYY-MM-DD (UTC; default: yesterday)");
  show->add_flag("--json", o.report.json, "print JSON");
  auto* read = report->add_subcommand("read", "validate and summarise a report someone sent (.json[.gz])");
  read->add_option("FILE", o.file, "the report file, or - for standard input")->required();
  read->add_flag("--json", o.report.json, "print JSON");
}

void add_commands(CLI::App& app, Options& o) {
  app.add_option("-c,--config", o.config_path, "TOML configuration file (default: embedded defaults)");
  app.add_flag("--print-config", o.print_config, "print the effective configuration and exit");

  auto* check = app.add_subcommand("check", "resolve DOMAIN's MTA-STS policy now");
  check->add_flag("--json", o.json, "print JSON");
  check->add_option("DOMAIN", o.domain)->required();

  auto* lint_policy = app.add_subcommand("lint-policy", "validate a policy file (RFC 8461 3.2)");
  lint_policy->add_flag("--json", o.json, "print JSON");
  lint_policy->add_option("--mx", o.mx_hosts, "an MX host to check against the policy (repeatable)");
  lint_policy->add_option("FILE", o.file, "policy file, or - for standard input")->required();

  auto* lint_txt = app.add_subcommand("lint-txt", "validate a _mta-sts TXT RRset (RFC 8461 3.1)");
  lint_txt->add_flag("--json", o.json, "print JSON");
  lint_txt->add_option("RECORD", o.records, "one argument per TXT record")->required();

  add_cache_commands(app, o);
  add_report_commands(app, o);
}

// CLI11 quotes the argument it refused ("The following argument was not
// expected: ..."); that argument may hold escape sequences or 100 kB.
std::string parse_failure(const CLI::App*, const CLI::Error& e) {
  return shown_message(e.what()) + "\nRun with --help for more information.\n";
}

int dispatch(CLI::App& app, const Options& o, const Config& config) {
  if (app.get_subcommands().empty()) block_daemon_signals();  // before any thread starts
  if (app.got_subcommand("check") || app.got_subcommand("cache") || app.got_subcommand("report"))
    become_configured_user(config);
  if (app.got_subcommand("check")) return check_command(config, o.domain, o.json);
  if (app.got_subcommand("cache")) {
    CacheArgs args = o.cache;
    args.action = app.get_subcommand("cache")->get_subcommands().front()->get_name();
    return cache_command(config, args);
  }
  if (app.got_subcommand("report")) {
    ReportArgs args = o.report;
    args.action = app.get_subcommand("report")->get_subcommands().front()->get_name();
    return report_command(config, args);
  }
  return run_daemon(config, o.config_path);
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"mta-sts-milter: MTA-STS (RFC 8461) for outbound mail"};
  app.set_version_flag("--version", std::string("mta-sts-milter ") + kVersion);
  Options o;
  add_commands(app, o);
  app.failure_message(parse_failure);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitInvalid;
  }
  // The lint commands need no configuration at all.
  if (app.got_subcommand("lint-policy")) return lint_policy_command(o.file, o.mx_hosts, o.json);
  if (app.got_subcommand("lint-txt")) return lint_txt_command(o.records, o.json);
  if (app.got_subcommand("report") && app.get_subcommand("report")->got_subcommand("read"))
    return report_read_command(o.file, o.report.json);

  const auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "mta-sts-milter: " << shown_message(config.error().detail) << "\n";
    return kExitConfig;
  }
  if (o.print_config) {
    // What the start would refuse (files, DNS settings, EHLO name), refused here too.
    if (const auto checked = check_settings(*config); !checked) {
      std::cerr << "mta-sts-milter: " << shown_message(checked.error().detail) << "\n";
      return kExitConfig;
    }
    std::cout << render_config(*config);
    return kExitOk;
  }
  try {
    set_up_logging(*config);
    return dispatch(app, o, *config);
  } catch (const StartupError& e) {
    spdlog::critical("startup event=failed error={}", policy::logfmt_value(e.what(), kShownMessageBytes));
    return e.exit_code();
  } catch (const std::exception& e) {
    spdlog::critical("cli event=internal-error error={}", policy::logfmt_value(e.what(), kShownMessageBytes));
    return 70;  // EX_SOFTWARE
  }
}

}  // namespace mtasts::milter
