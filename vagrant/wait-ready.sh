#!/usr/bin/env bash
# Guest side (root, on a server): wait until k3s's API server answers /readyz with ok, then
# until each NODE is Ready as reported after the start of its current boot (a Ready=True left
# over from before a reboot does not count). Gives up after LAB_WAIT_TIMEOUT seconds (600) with
# the last answer it got.
#   wait-ready.sh [NODE[=BOOT_EPOCH]]...   (no =BOOT_EPOCH: this machine's boot; no NODE: this node)
set -euo pipefail
LAB_TAG="wait"
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || set -- "$(hostname | tr '[:upper:]' '[:lower:]')"
lab_wait_ready "$@"
