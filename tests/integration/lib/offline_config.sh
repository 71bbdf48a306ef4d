# shellcheck shell=bash
# offline_config FILE MILTER_SOCKET STORE_PATH: the smallest daemon config
# the tests that need no test bed start it with: the milter on MILTER_SOCKET,
# the store at STORE_PATH, no resolv.conf (nothing reaches a resolver), DNS
# timeouts of 1 s, no socketmap. Callers append their own tables.
offline_config() {
  cat >"$1" <<CONF
[milter]
socket = '$2'
[store]
path = '$3'
[dns]
use_resolv_conf = false
timeout = 1
[socketmap]
socket = ''
CONF
}
