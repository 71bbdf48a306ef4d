#!/usr/bin/env bash
# The layering the build promises (policy/CMakeLists.txt): the pure core in
# policy/*.{h,cpp} does no I/O, starts no threads and logs nothing, and no
# lower layer reaches up. Fails with the offending lines.
#   policy/          no threads, locks, logging, sockets, files, libraries of I/O
#   policy/engine/   only the core and its ports: never policy/net, store/, milter/
#   policy/net/, store/  never the engine or milter/
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bad=0
check() {  # check WHAT REGEX FILES...
  local what=$1 regex=$2; shift 2
  local hits
  hits=$(grep -nE "$regex" "$@" 2>/dev/null)
  if [ -n "$hits" ]; then
    echo "FAIL $what:"; echo "$hits" | sed 's/^/  /'
    bad=1
  fi
}
core=(policy/*.h policy/*.cpp)
check "the pure core includes threads, locks, logging or I/O" \
  '#include <(thread|mutex|shared_mutex|future|condition_variable|atomic|stop_token|semaphore|fstream|iostream|spdlog/[^>]*|curl/[^>]*|unbound\.h|sqlite3\.h|sys/socket\.h|netdb\.h|unistd\.h)>' \
  "${core[@]}"
check "the pure core includes the engine, adapters or the milter" \
  '#include "(policy/engine|policy/net|store|milter)/' "${core[@]}"
check "the engine includes adapters or the milter" \
  '#include "(policy/net|store|milter)/' policy/engine/*.h policy/engine/*.cpp
check "an adapter includes the engine or the milter" \
  '#include "(policy/engine|milter)/' policy/net/*.h policy/net/*.cpp store/*.h store/*.cpp
[ "$bad" = 0 ] && echo "layering ok: core ${#core[@]} files pure"
exit "$bad"
