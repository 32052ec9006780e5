#!/usr/bin/env bash
# Guest provisioning for the k3sprof Vagrant lab (run as root by Vagrant's shell provisioner).
#   1. OS packages for the recorder (BCC, kernel headers for the running kernel)
#   2. k3sprof from the synced repo, copied to /opt/k3sprof (synced folders may not be mounted
#      yet when the boot unit starts early in boot; /opt always is) + a venv with BCC
#   3. k3s at $K3S_VERSION (server or agent), started once so the traced boot is a restart
#      (data dir extracted, images pulled) unless FIRST_BOOT=cold
#   4. the boot unit (k3sprof boot install); the host's run.sh then reboots the VM
# Every step says what it does; a failure names the step it happened in (lib.sh `step`).
#
# Environment (set by the Vagrantfile):
#   K3S_VERSION   e.g. v1.32.4+k3s1 (INSTALL_K3S_VERSION)        [required]
#   ROLE          server | agent                                  [server]
#   K3S_URL       https://SERVER:6443 (agent only)
#   K3S_TOKEN     shared secret of a multi-node lab (else k3s makes one)
#   NODE_IP       address k3s and flannel use (multi-node labs: the private network)
#   FIRST_BOOT    warm (trace a restart: reproducible) | cold (trace k3s's first start) [warm]
#   BOOT_END BOOT_TIMEOUT BOOT_KEEP BOOT_ATTACH_TIMEOUT   passed to `k3sprof boot install`
#   K3S_BINARY    offline install: path (in the VM) of a k3s binary, e.g. a stand-in. Nothing is
#                 fetched for k3s: the binary is copied to /usr/local/bin/k3s and the k3s unit is
#                 written here in the shape k3s's install script writes it. OS packages must then
#                 already be in the box (they are checked, not installed).
#   BPF_CACHE_SEED  directory (in the VM) of k3sprof bytecode-cache entries filled by `k3sprof
#                 doctor` in a twin VM (same box: kernel, headers, BCC; same k3sprof source):
#                 copied into /var/cache/k3sprof/bpf (root-only) and doctor runs with --cached,
#                 so this VM does not compile again (minutes under TCG). An entry that does not
#                 match here is ignored (doctor then compiles, as without it).
set -euo pipefail

SRC=${SRC:-/k3sprof-src}
PREFIX=${PREFIX:-/opt/k3sprof}
ROLE=${ROLE:-server}
FIRST_BOOT=${FIRST_BOOT:-warm}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}
# how long systemd holds k3s for the probes (TimeoutStartSec): with sched and stacks on, the
# first BCC compile in a TCG VM took 225 s (the lab, 2026-12-06), past the unit's 60 s default,
# so systemd stopped the recorder and k3s booted untraced; on real hardware it is seconds
BOOT_ATTACH_TIMEOUT=${BOOT_ATTACH_TIMEOUT:-600}
BOOT_KEEP=${BOOT_KEEP:-10}
K3S_BINARY=${K3S_BINARY:-}
BPF_CACHE_SEED=${BPF_CACHE_SEED:-}

if [ ! -f "$SRC/vagrant/lib.sh" ]; then
  echo "[provision] error: $SRC does not hold the k3sprof repo (synced folder missing?)" >&2
  exit 1
fi
LAB_TAG="provision $(hostname)"
# shellcheck source=SCRIPTDIR/lib.sh
. "$SRC/vagrant/lib.sh"

: "${K3S_VERSION:?set K3S_VERSION, e.g. v1.32.4+k3s1}"
[ "$(id -u)" -eq 0 ] || lab_die "run as root"
case "$ROLE" in server|agent) ;; *) lab_die "ROLE must be server or agent, not $ROLE" ;; esac
if [ "$ROLE" = agent ] && [ -z "${K3S_URL:-}" ]; then lab_die "an agent needs K3S_URL"; fi
if [ -n "$K3S_BINARY" ] && [ ! -x "$K3S_BINARY" ]; then lab_die "K3S_BINARY $K3S_BINARY is not an executable"; fi

# shellcheck disable=SC1091
. /etc/os-release
kver=$(uname -r)
NEW_KERNEL=no
unit=k3s.service
[ "$ROLE" = agent ] && unit=k3s-agent.service

# --- 1. OS packages ---------------------------------------------------------------------------
# The venv must be made by the Python that the distro's BCC module is built for (Debian/Ubuntu),
# or get the (pure Python) bcc module added by path (openSUSE Leap: python3-bcc is for 3.6).

debian_packages() {
  export DEBIAN_FRONTEND=noninteractive
  local pkgs=(python3-bpfcc python3-venv python3-pip "linux-headers-$kver" rsync curl ca-certificates)
  if [ -n "$K3S_BINARY" ]; then
    local missing=() p
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] || lab_die "offline install (K3S_BINARY set): the box lacks ${missing[*]}"
    return 0
  fi
  apt-get update -q >/dev/null
  if ! apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
    # The box's kernel is older than the archive: take the current kernel and its headers;
    # the reboot that run.sh does next boots into it (doctor is checked after that boot).
    lab_log "no headers for $kver in the archive: installing the current kernel + headers"
    pkgs=("${pkgs[@]/linux-headers-$kver/linux-image-generic}" linux-headers-generic)
    NEW_KERNEL=yes
  fi
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
}

# SUSE: the headers package at the running kernel's exact package VERSION-RELEASE
# (lib.sh lab_suse_kernel_devel asks rpm; uname -r does not spell it out).
suse_packages() {
  local flavor=${kver##*-} devel
  devel=$(lab_suse_kernel_devel "$kver")
  # apparmor-parser: k3s's own e2e Vagrantfiles install it on Leap boxes (containerd needs it
  # when AppArmor is on).
  local pkgs=(python3-bcc python311 rsync curl apparmor-parser)
  if [ -n "$K3S_BINARY" ]; then
    rpm -q "${pkgs[@]}" "${devel/=/-}" >/dev/null \
      || lab_die "offline install (K3S_BINARY set): the box lacks some of ${pkgs[*]} ${devel/=/-}"
    return 0
  fi
  if zypper --non-interactive --quiet install --no-recommends "${pkgs[@]}" "$devel"; then
    return 0
  fi
  # The repos no longer carry headers for the box's kernel: update the kernel with its headers;
  # run.sh's reboot boots into it (doctor is checked after that boot, in the boot unit's journal).
  lab_log "no $devel in the repos: installing the current kernel-$flavor + headers"
  zypper --non-interactive --quiet install --no-recommends "${pkgs[@]}" "kernel-$flavor" "kernel-$flavor-devel"
  NEW_KERNEL=yes
}

case "${ID_LIKE:-} $ID" in
  *debian*|*ubuntu*)
    step "installing BCC and kernel headers for $kver (apt)" debian_packages
    PY=/usr/bin/python3
    BCC_DIR=
    ;;
  *suse*)
    step "installing BCC, Python 3.11 and kernel headers for $kver (zypper)" suse_packages
    PY=/usr/bin/python3.11
    BCC_DIR=$(python3 -c 'import bcc, os; print(os.path.dirname(bcc.__file__))')
    ;;
  *) lab_die "unsupported distribution $ID (supported: Ubuntu/Debian, openSUSE Leap/SLES)" ;;
esac

# --- 2. k3sprof -------------------------------------------------------------------------------
install_k3sprof() {
  mkdir -p "$PREFIX"
  rsync -a --delete --exclude .git --exclude .venv --exclude reports --exclude '*.egg-info' \
    --exclude __pycache__ --exclude .mypy_cache --exclude .ruff_cache --exclude .pytest_cache \
    "$SRC/" "$PREFIX/src/"
  local venv=$PREFIX/.venv site
  [ -x "$venv/bin/python" ] || "$PY" -m venv --system-site-packages "$venv"
  if [ -n "$BCC_DIR" ]; then
    # Only the bcc package, not all of Python 3.6's site-packages.
    mkdir -p "$PREFIX/bcc-path"
    ln -sfn "$BCC_DIR" "$PREFIX/bcc-path/bcc"
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$PREFIX/bcc-path" > "$site/k3sprof-bcc.pth"
  fi
  # k3sprof alone when the venv already has its dependencies (the lab's box: tests/lab/box.py
  # bakes them in), else with them from PyPI (lib.sh)
  step "installing the k3sprof package into $venv" lab_pip_install_k3sprof "$venv" "$PREFIX/src"
  ln -sfn "$venv/bin/k3sprof" /usr/local/bin/k3sprof
  chmod 0755 "$PREFIX/src/vagrant/"*.sh
  [ -e /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
}
step "installing k3sprof into $PREFIX" install_k3sprof
if [ "$NEW_KERNEL" = yes ]; then
  lab_log "skipping k3sprof doctor until the new kernel runs (the boot unit's journal will tell)"
elif [ -n "$BPF_CACHE_SEED" ] && compgen -G "$BPF_CACHE_SEED/*.json" >/dev/null; then
  seed_bpf_cache() {
    install -d -o root -g root -m 0700 /var/cache/k3sprof /var/cache/k3sprof/bpf
    install -o root -g root -m 0600 "$BPF_CACHE_SEED"/*.json /var/cache/k3sprof/bpf/
  }
  step "seeding the bytecode cache from $BPF_CACHE_SEED (a twin VM's doctor)" seed_bpf_cache
  step "checking that this VM can record (k3sprof doctor --cached)" k3sprof doctor --cached
else
  step "checking that this VM can record (k3sprof doctor)" k3sprof doctor
fi

# --- 3. k3s -----------------------------------------------------------------------------------
args=()
if [ -n "${NODE_IP:-}" ]; then
  iface=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{split($4, a, "/")} a[1] == ip {print $2; exit}')
  [ -n "$iface" ] || lab_die "no interface has NODE_IP $NODE_IP"
  args+=(--node-ip "$NODE_IP" --flannel-iface "$iface")
fi

# With the internet: k3s's own install script (binary, symlinks, unit, env file).
install_k3s_online() {
  export INSTALL_K3S_VERSION=$K3S_VERSION
  # K3S_URL / K3S_TOKEN reach install.sh through the environment; it writes them to the unit's
  # env file (root-only), never to the k3s command line.
  [ -n "${K3S_TOKEN:-}" ] && export K3S_TOKEN
  [ -n "${K3S_URL:-}" ] && export K3S_URL
  [ "$FIRST_BOOT" = cold ] && export INSTALL_K3S_SKIP_START=true
  step "fetching k3s's install script (https://get.k3s.io)" curl -sSfL https://get.k3s.io -o /tmp/k3s-install.sh
  step "running k3s's install script" sh /tmp/k3s-install.sh "$ROLE" "${args[@]}"
}

# Without it (K3S_BINARY): what the install script would leave behind, done here. The unit has
# the install script's shape (lib.sh lab_write_k3s_unit); the join secret goes to its env file.
install_k3s_offline() {
  install -m 0755 "$K3S_BINARY" /usr/local/bin/k3s
  local tool
  for tool in kubectl crictl ctr; do
    [ -e "/usr/local/bin/$tool" ] || ln -s k3s "/usr/local/bin/$tool"
  done
  lab_write_k3s_unit "$ROLE" /usr/local/bin/k3s /etc/systemd/system "${args[@]}" >/dev/null
  {
    [ -n "${K3S_TOKEN:-}" ] && echo "K3S_TOKEN=$K3S_TOKEN"
    [ -n "${K3S_URL:-}" ] && echo "K3S_URL=$K3S_URL"
    true
  } > "/etc/systemd/system/$unit.env"
  systemctl daemon-reload
  systemctl enable "$unit"
  if [ "$FIRST_BOOT" = warm ]; then
    systemctl restart "$unit"
  fi
}

installed=$(k3s --version 2>/dev/null | awk 'NR==1 {print $3}' || true)
if [ -n "$K3S_BINARY" ]; then
  step "installing k3s offline from $K3S_BINARY ($ROLE ${args[*]})" install_k3s_offline
elif [ "$installed" != "$K3S_VERSION" ]; then
  step "installing k3s $K3S_VERSION ($ROLE ${args[*]})" install_k3s_online
else
  lab_log "k3s $K3S_VERSION already installed"
fi
if [ "$FIRST_BOOT" = warm ]; then
  # First start of k3s (not traced): wait until it serves, so the traced boot is a restart.
  step "waiting for k3s's first start to serve (kubelet healthy; journalctl -u $unit)" \
    lab_wait_ok "kubelet" http://127.0.0.1:10248/healthz
fi

# --- 4. the boot unit -------------------------------------------------------------------------
end_args=()
[ -n "${BOOT_END:-}" ] && end_args=(--end "$BOOT_END")
step "installing the boot unit (k3sprof boot install)" \
  k3sprof boot install --timeout "$BOOT_TIMEOUT" --keep "$BOOT_KEEP" \
    --attach-timeout "$BOOT_ATTACH_TIMEOUT" "${end_args[@]}"
step "checking that k3sprof-boot.service is enabled" systemctl is-enabled --quiet k3sprof-boot.service
lab_log "ready: the next boot is traced (the host's run.sh reboots this VM)"
