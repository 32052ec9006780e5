#!/usr/bin/env bash
# Guest side of a lab run, after the traced boot (run as root by the host's run.sh):
#   wait until the API server serves and the node is Ready as reported by THIS boot (servers),
#   or until its kubelet is healthy (agents); let startup settle; stop the recording
#   (`systemctl stop` ends it cleanly: trace + report are written); and pack the newest run with
#   what systemd and k3s say about the same boot.
# Prints the path of the tarball on stdout, and nothing else there; progress and errors go to
# stderr, each error naming the step it happened in.
#   collect.sh [--no-wait] [--settle S]        (LAB_WAIT_TIMEOUT: seconds per wait, 600)
set -euo pipefail
LAB_TAG="collect $(hostname)"
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

WAIT=yes
SETTLE=10
while [ $# -gt 0 ]; do
  case "$1" in
    --no-wait) WAIT=no ;;
    --settle) SETTLE=$2; shift ;;
    *) lab_die "unknown argument $1" ;;
  esac
  shift
done

unit=k3s.service
systemctl cat k3s-agent.service >/dev/null 2>&1 && unit=k3s-agent.service
node=$(hostname | tr '[:upper:]' '[:lower:]')

boot_epoch=$(lab_boot_epoch)
LAB_READY_AT=
LAB_READY_SOURCE=
if [ "$WAIT" = yes ]; then
  if [ "$unit" = k3s.service ]; then
    step "waiting for the API server, then for node $node to be Ready in this boot" \
      lab_wait_ready "$node=$boot_epoch"
  else
    # Agents have no admin kubeconfig: the kubelet's health is what they can see.
    step "waiting for the kubelet to be healthy" \
      lab_wait_ok "kubelet" http://127.0.0.1:10248/healthz
  fi
  sleep "$SETTLE"
fi

# Ends the recording if neither the end condition nor the timeout has yet; waits for the report.
step "stopping the recording (systemctl stop k3sprof-boot)" systemctl stop k3sprof-boot.service
result=$(systemctl show -p Result --value k3sprof-boot.service)
[ "$result" = success ] || lab_log "k3sprof-boot.service result: $result (see boot-unit.journal)"

run=$(k3sprof boot status --json | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
print(runs[-1]["path"] if runs else "")')
[ -n "$run" ] || lab_die "no recorded run: journalctl -b -u k3sprof-boot.service"
boot_id=$(tr -d - < /proc/sys/kernel/random/boot_id)
case "$run" in *"$boot_id") ;; *) lab_die "the newest run $run is not from this boot ($boot_id)" ;; esac

out=$(mktemp -d)
extra=$out/$(basename "$run")/lab
cp -a "$run" "$out/"
mkdir -p "$extra"
# Same boot, systemd's and k3s's own view; -o short-monotonic uses the trace's clock.
journalctl -b -u "$unit" -o short-monotonic --no-pager > "$extra/$unit.journal" || true
journalctl -b -u k3sprof-boot.service -o short-monotonic --no-pager > "$extra/boot-unit.journal" || true
systemd-analyze time > "$extra/systemd-analyze-time.txt" 2>&1 || true
systemd-analyze critical-chain "$unit" > "$extra/critical-chain.txt" 2>&1 || true
systemd-analyze blame --no-pager > "$extra/blame.txt" 2>&1 || true
{
  echo "k3s: $(k3s --version | head -n 1)"
  echo "kernel: $(uname -r)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "cpus: $(nproc)"
  echo "memory_kib: $(awk '/MemTotal/ {print $2}' /proc/meminfo)"
  echo "uptime_at_collect_s: $(cut -d' ' -f1 /proc/uptime)"
} > "$extra/host.txt"
if [ "$unit" = k3s.service ]; then
  # Node Ready as lab_wait_node_ready found it, in seconds after boot (1 s resolution):
  # "transition" = the condition turned True in this boot (lastTransitionTime), "heartbeat" =
  # it never left True, this boot's kubelet reported it (lastHeartbeatTime, an upper bound).
  if [ -n "$LAB_READY_AT" ]; then
    printf '{"node": "%s", "boot_utc": "%s", "ready_utc": "%s", "ready_s_after_boot": %d, "source": "%s"}\n' \
      "$node" "$(lab_utc "$boot_epoch")" "$(lab_utc "$LAB_READY_AT")" $((LAB_READY_AT - boot_epoch)) \
      "$LAB_READY_SOURCE" > "$extra/node-ready.json"
  fi
  kubectl get node "$node" -o json > "$extra/node.json" 2>&1 || true
  kubectl get nodes -o wide > "$extra/nodes.txt" 2>&1 || true
fi

tarball=/tmp/k3sprof-collect.tar.gz
tar -C "$out" -czf "$tarball" .
rm -rf "$out"
# The vagrant user fetches it with scp; it holds this lab VM's throwaway data only.
chown "${SUDO_USER:-vagrant}" "$tarball" 2>/dev/null || true
lab_log "packed $(basename "$run")"
echo "$tarball"
