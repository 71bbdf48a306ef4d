// The single binary's command line: the daemon (no subcommand) and the
// operator commands check, lint-policy, lint-txt and cache. Returns the
// process exit code (sysexits: 0, 1 usage, 75 temporary, 78 config, ...).
// Never throws.
#pragma once

namespace mtasts::milter {

int run_cli(int argc, char** argv);

}  // namespace mtasts::milter
