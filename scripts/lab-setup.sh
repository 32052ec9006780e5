#!/usr/bin/env bash
# Lab-only machine setup for `make lab-test` (the Vagrant lab run end to end on this machine),
# run as root, idempotent. Kept apart from scripts/setup.sh: only the lab run needs libvirt.
#   - Debian's vagrant, vagrant-libvirt, libvirt's daemon with its QEMU driver, QEMU, dnsmasq
#     (libvirt's NAT network), qemu-img (the box image), mmdebstrap (the box's root file system)
#   - nothing is started here: tests/lab/lab.sh starts libvirtd and virtlogd inside a network
#     namespace of its own and stops them afterwards (PID 1 here is not systemd).
set -euo pipefail
log() { printf '[lab-setup] %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "lab-setup: must run as root (try: sudo make lab-test)" >&2; exit 1; }

pkgs=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
      qemu-system-x86 qemu-utils dnsmasq-base iptables rsync openssh-client mmdebstrap
      e2fsprogs iproute2 util-linux chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Without systemd as PID 1, the packages' init scripts would start libvirtd (and its default
  # NAT network) in the host's network namespace: forbid service starts during the install
  # unless a policy is in place already.
  policy=/usr/sbin/policy-rc.d
  made_policy=no
  if [ "$(ps -p 1 -o comm=)" != systemd ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    made_policy=yes
  fi
  apt-get update -q >/dev/null
  rc=0
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$made_policy" = no ] || rm -f "$policy"
  [ "$rc" -eq 0 ] || exit "$rc"
fi
log "ready: $(vagrant --version), vagrant-libvirt $(dpkg-query -W -f='${Version}' vagrant-libvirt), libvirt $(dpkg-query -W -f='${Version}' libvirt-daemon)"
