#!/usr/bin/env bash
# The man pages built beside the binary (milter/man/, scdoc): both render with
# `man -l`, carry the version of project() in CMakeLists.txt, and say what the
# binary does: every key and default of `--print-config` is in
# mta-sts-milter.toml(5), every command of `--help` in mta-sts-milter(8).
# Also: contrib/mta-sts-milter.toml is `--print-config` (after its 3-line
# header), so the example config cannot drift either.
#
# Usage: man_pages.sh   (MTASTS_BIN: the executable; its build has the pages)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
MAN_DIR=$(dirname "$MTASTS_BIN")/man
VERSION=$(sed -n 's/^project(mta-sts-milter VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT

# render PAGE: the page as text (no hyphenation, one long line per paragraph).
render() { MANWIDTH=1000 man --no-hyphenation --no-justification -l "$MAN_DIR/$1" 2>"$WORK/$1.err"; }

check_renders() {
  local page=$1 text
  [ -f "$MAN_DIR/$page" ] || { echo "no $MAN_DIR/$page (target man_pages)"; return; }
  text=$(render "$page") || { echo "man -l failed: $(head -c 300 "$WORK/$page.err")"; return; }
  [ ! -s "$WORK/$page.err" ] || echo "man warns: $(head -c 300 "$WORK/$page.err"); "
  grep -q '^NAME' <<<"$text" || echo "no NAME section; "
  grep -q "mta-sts-milter $VERSION" <<<"$text" || echo "no 'mta-sts-milter $VERSION' in the footer; "
}

check_every_key() {
  local text section="" line key value missing=""
  text=$(render mta-sts-milter.toml.5) || { echo "does not render"; return; }
  while IFS= read -r line; do
    if [[ $line =~ ^\[([a-z_]+)\]$ ]]; then section=${BASH_REMATCH[1]}; continue; fi
    [[ $line =~ ^([a-z_]+)\ =\ (.*)$ ]] || continue
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]%%  # *}
    grep -qF -- "$section.$key = $value" <<<"$text" || missing+="$section.$key = $value; "
  done < <("$MTASTS_BIN" --print-config)
  [ -z "$missing" ] || echo "not in mta-sts-milter.toml(5): $missing"
}

check_every_command() {
  local text command missing=""
  text=$(render mta-sts-milter.8) || { echo "does not render"; return; }
  for command in check lint-policy lint-txt "cache list" "cache show" "cache forget" "cache import" \
    "cache export" "cache refresh" "report build" "report send" "report status" "report show" "report read" \
    --print-config --version SIGHUP SIGUSR1 SIGTERM NOTIFY_SOCKET CREDENTIALS_DIRECTORY; do
    grep -qF -- "$command" <<<"$text" || missing+="'$command' "
  done
  # And the other way: every command --help lists is in the page.
  for command in $("$MTASTS_BIN" --help | awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
    grep -qF -- "$command" <<<"$text" || missing+="'$command' (from --help) "
  done
  [ -z "$missing" ] || echo "not in mta-sts-milter(8): $missing"
}

check_example_config() {
  "$MTASTS_BIN" --print-config >"$WORK/print-config.toml"
  tail -n +4 "$ROOT/contrib/mta-sts-milter.toml" | diff -u - "$WORK/print-config.toml" >"$WORK/diff" ||
    echo "contrib/mta-sts-milter.toml differs from --print-config (regenerate it): $(head -c 400 "$WORK/diff")"
}

report renders-8 "$(check_renders mta-sts-milter.8)"
report renders-5 "$(check_renders mta-sts-milter.toml.5)"
report every-key-in-5 "$(check_every_key)"
report every-command-in-8 "$(check_every_command)"
report example-config-is-print-config "$(check_example_config)"
report_summary
