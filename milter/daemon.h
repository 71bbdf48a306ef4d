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

// For the store commands (check, cache ...) started as root with milter.user
// set: prepares the store folder for that user and becomes that user, so the
// files the command creates are the daemon's, never root's (which a daemon
// running as the user could then not write). Does nothing otherwise.
// Throws StartupError like run_daemon.
void become_configured_user(const Config& config);

// Runs until stopped; returns the exit code (0 after a clean drain).
// Throws StartupError on a start-up problem.
int run_daemon(const Config& config, const std::string& config_path);

}  // namespace mtasts::milter
