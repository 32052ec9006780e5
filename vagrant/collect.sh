#!/usr/bin/env bash
# Guest side of a lab run, after the traced boot (run as root by the host's run.sh):
#   wait until the node is Ready (servers) or its kubelet is healthy (agents), let startup
#   settle, stop the recording (`systemctl stop` ends it cleanly: trace + report are written),
#   and pack the newest run with what systemd and k3s say about the same boot.
# Prints the path of the tarball on its last line.
#   collect.sh [--no-wait] [--settle S]
set -euo pipefail

WAIT=yes
SETTLE=10
while [ $# -gt 0 ]; do
  case "$1" in
    --no-wait) WAIT=no ;;
    --settle) SETTLE=$2; shift ;;
    *) echo "collect.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[collect %s] %s\n' "$(hostname)" "$*" >&2; }
die() { printf '[collect %s] error: %s\n' "$(hostname)" "$*" >&2; exit 1; }

unit=k3s.service
systemctl cat k3s-agent.service >/dev/null 2>&1 && unit=k3s-agent.service
node=$(hostname | tr '[:upper:]' '[:lower:]')

if [ "$WAIT" = yes ]; then
  if [ "$unit" = k3s.service ]; then
    log "waiting for node $node to be Ready"
    k3s kubectl wait --for=condition=Ready "node/$node" --timeout=600s >&2 \
      || die "node $node not Ready after 600 s: journalctl -b -u $unit"
  else
    log "waiting for the kubelet to be healthy (agents have no admin kubeconfig)"
    for _ in $(seq 300); do
      curl -sf http://127.0.0.1:10248/healthz >/dev/null 2>&1 && break
      sleep 2
    done
  fi
  sleep "$SETTLE"
fi

# Ends the recording if neither the end condition nor the timeout has yet; waits for the report.
systemctl stop k3sprof-boot.service
result=$(systemctl show -p Result --value k3sprof-boot.service)
[ "$result" = success ] || log "k3sprof-boot.service result: $result (see boot-unit.journal)"

run=$(k3sprof boot status --json | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
print(runs[-1]["path"] if runs else "")')
[ -n "$run" ] || die "no recorded run: journalctl -b -u k3sprof-boot.service"
boot_id=$(tr -d - < /proc/sys/kernel/random/boot_id)
case "$run" in *"$boot_id") ;; *) die "the newest run $run is not from this boot ($boot_id)" ;; esac

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
  # Node Ready as the API server recorded it, in seconds after boot (1 s resolution).
  ready=$(k3s kubectl get node "$node" \
    -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.lastTransitionTime}{end}')
  boot_epoch=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) ))
  ready_epoch=$(date -d "$ready" +%s)
  printf '{"node": "%s", "ready_utc": "%s", "ready_s_after_boot": %d}\n' \
    "$node" "$ready" $(( ready_epoch - boot_epoch )) > "$extra/node-ready.json"
  k3s kubectl get nodes -o wide > "$extra/nodes.txt" 2>&1 || true
fi

tarball=/tmp/k3sprof-collect.tar.gz
tar -C "$out" -czf "$tarball" .
rm -rf "$out"
# The vagrant user fetches it with scp; it holds this lab VM's throwaway data only.
chown "${SUDO_USER:-vagrant}" "$tarball" 2>/dev/null || true
log "packed $(basename "$run")"
echo "$tarball"
