// The milter daemon: libmilter in the foreground (as systemd expects), one
// shared engine (resolver, next-hop checker, background refresher), config
// reload on SIGUSR1, and a bounded drain of open sessions on SIGTERM/SIGINT/
// SIGHUP (libmilter's own signal thread stops smfi_main on those).
#pragma once

#include <string>

#include "milter/config.h"

namespace mtasts::milter {

// Blocks the signals the daemon handles; call before any thread starts.
void block_daemon_signals();

// Runs until stopped; returns the exit code (0 after a clean drain).
// Throws StartupError on a start-up problem.
int run_daemon(const Config& config, const std::string& config_path);

}  // namespace mtasts::milter
