#!/usr/bin/env bash
# The lab's private network namespace with its own libvirt daemons, for `make lab-test`.
#   labns.sh start    create netns k3sprof-lab (loopback only, no uplink), start virtlogd and
#                     libvirtd INSIDE it; libvirt's NAT network for Vagrant (bridge, dnsmasq,
#                     192.168.121.0/24) and the VMs' NICs are then created inside it too, so
#                     nothing of the lab reaches the host's network or the internet
#   labns.sh exec CMD...   run CMD inside the namespace (vagrant must: it SSHes to the guests)
#   labns.sh stop     destroy the domains and networks libvirt runs, stop the daemons this
#                     script started (by their pid files), delete the namespace
# Root only. PID 1 here is not systemd, so the daemons are started by hand, not as services.
set -euo pipefail
NS=${LAB_NETNS:-k3sprof-lab}
STATE=${LAB_STATE:-/run/k3sprof-lab}
log() { printf '[labns] %s\n' "$*" >&2; }

virsh_ns() { ip netns exec "$NS" virsh -c qemu:///system "$@"; }

alive() {  # PIDFILE: the process it names runs
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  [ "$(id -u)" -eq 0 ] || { echo "labns: must run as root" >&2; exit 1; }
  if [ -S /run/libvirt/libvirt-sock ] && ! alive "$STATE/libvirtd.pid"; then
    echo "labns: a libvirtd not started by this script owns /run/libvirt/libvirt-sock; stop it first" >&2
    exit 1
  fi
  mkdir -p "$STATE"
  ip netns list | grep -qx "$NS\( .*\)\?" || ip netns add "$NS"
  ip -n "$NS" link set lo up
  if ! alive "$STATE/virtlogd.pid"; then
    ip netns exec "$NS" virtlogd --daemon --pid-file "$STATE/virtlogd.pid"
  fi
  if ! alive "$STATE/libvirtd.pid"; then
    ip netns exec "$NS" libvirtd --daemon --pid-file "$STATE/libvirtd.pid"
  fi
  for _ in $(seq 60); do
    if virsh_ns version >/dev/null 2>&1; then
      log "libvirtd up in netns $NS (pid $(cat "$STATE/libvirtd.pid"))"
      stale
      return 0
    fi
    sleep 0.5
  done
  echo "labns: libvirtd did not answer on qemu:///system within 30 s" >&2
  exit 1
}

stale() {
  # Domains of the lab's own Vagrantfiles (vagrant-libvirt names them DIR_MACHINE) left defined
  # by a run that was killed before its `vagrant destroy`: libvirt keeps their definition and
  # disk, and the next `vagrant up` refuses the taken name. Only those names are touched.
  local d
  for d in $(virsh_ns list --all --name 2>/dev/null); do
    case "$d" in
      single_*|compare_*)
        log "removing the stale lab domain $d (and its disk) left by an earlier run"
        virsh_ns destroy "$d" >/dev/null 2>&1 || true
        virsh_ns undefine "$d" --remove-all-storage >/dev/null 2>&1 \
          || virsh_ns undefine "$d" >/dev/null 2>&1 || true
        ;;
    esac
  done
}

stop() {
  local d n pid f
  if alive "$STATE/libvirtd.pid"; then
    for d in $(virsh_ns list --name 2>/dev/null); do virsh_ns destroy "$d" >/dev/null || true; done
    for n in $(virsh_ns net-list --name 2>/dev/null); do virsh_ns net-destroy "$n" >/dev/null || true; done
  fi
  for f in "$STATE/libvirtd.pid" "$STATE/virtlogd.pid"; do
    if alive "$f"; then
      pid=$(cat "$f")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
  done
  # anything left in the namespace (dnsmasq of a network libvirt did not get to destroy, a
  # qemu): it was started by the daemons above
  if ip netns list | grep -qx "$NS\( .*\)\?"; then
    for pid in $(ip netns pids "$NS"); do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in $(ip netns pids "$NS"); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS"
  fi
  log "stopped libvirtd/virtlogd, removed netns $NS"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  exec) shift; exec ip netns exec "$NS" "$@" ;;
  *) echo "usage: $0 start|stop|exec CMD..." >&2; exit 2 ;;
esac
