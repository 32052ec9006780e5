#!/usr/bin/env bash
# Guest provisioning for the k3sprof Vagrant lab (run as root by Vagrant's shell provisioner).
#   1. OS packages for the recorder (BCC, kernel headers for the running kernel)
#   2. k3sprof from the synced repo, copied to /opt/k3sprof (synced folders may not be mounted
#      yet when the boot unit starts early in boot; /opt always is) + a venv with BCC
#   3. k3s at $K3S_VERSION (server or agent), started once so the traced boot is a restart
#      (data dir extracted, images pulled) unless FIRST_BOOT=cold
#   4. the boot unit (k3sprof boot install); the host's run.sh then reboots the VM
#
# Environment (set by the Vagrantfile):
#   K3S_VERSION   e.g. v1.32.4+k3s1 (INSTALL_K3S_VERSION)        [required]
#   ROLE          server | agent                                  [server]
#   K3S_URL       https://SERVER:6443 (agent only)
#   K3S_TOKEN     shared secret of a multi-node lab (else k3s makes one)
#   NODE_IP       address k3s and flannel use (multi-node labs: the private network)
#   FIRST_BOOT    warm (trace a restart: reproducible) | cold (trace k3s's first start) [warm]
#   BOOT_END BOOT_TIMEOUT BOOT_KEEP   passed to `k3sprof boot install`
set -euo pipefail

SRC=${SRC:-/k3sprof-src}
PREFIX=${PREFIX:-/opt/k3sprof}
ROLE=${ROLE:-server}
FIRST_BOOT=${FIRST_BOOT:-warm}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}
BOOT_KEEP=${BOOT_KEEP:-10}
: "${K3S_VERSION:?set K3S_VERSION, e.g. v1.32.4+k3s1}"

log() { printf '[provision %s] %s\n' "$(hostname)" "$*"; }
die() { printf '[provision %s] error: %s\n' "$(hostname)" "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
[ -f "$SRC/pyproject.toml" ] || die "$SRC does not hold the k3sprof repo (synced folder missing?)"
case "$ROLE" in server|agent) ;; *) die "ROLE must be server or agent, not $ROLE" ;; esac
if [ "$ROLE" = agent ] && [ -z "${K3S_URL:-}" ]; then die "an agent needs K3S_URL"; fi

# shellcheck disable=SC1091
. /etc/os-release
kver=$(uname -r)
NEW_KERNEL=no

# --- 1. OS packages ---------------------------------------------------------------------------
# The venv must be made by the Python that the distro's BCC module is built for (Debian/Ubuntu),
# or get the (pure Python) bcc module added by path (openSUSE Leap: python3-bcc is for 3.6).
case "${ID_LIKE:-} $ID" in
  *debian*|*ubuntu*)
    export DEBIAN_FRONTEND=noninteractive
    log "installing BCC and kernel headers for $kver (apt)"
    apt-get update -q >/dev/null
    headers=("linux-headers-$kver")
    if ! apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
      # The box's kernel is older than the archive: take the current kernel and its headers;
      # the reboot that run.sh does next boots into it (doctor is checked after that boot).
      log "no headers for $kver in the archive: installing the current kernel + headers"
      headers=(linux-image-generic linux-headers-generic)
      NEW_KERNEL=yes
    fi
    apt-get install -y -q --no-install-recommends python3-bpfcc python3-venv python3-pip \
      "${headers[@]}" rsync curl ca-certificates >/dev/null
    PY=/usr/bin/python3
    BCC_DIR=
    ;;
  *suse*)
    log "installing BCC, Python 3.11 and kernel headers for $kver (zypper)"
    # kernel-default-devel must match the RUNNING kernel; a box older than the repo may need
    # `zypper up kernel-default && reboot` first (the error below says so).
    zypper --non-interactive --quiet install --no-recommends python3-bcc python311 rsync curl \
      "kernel-default-devel = ${kver%-default}" \
      || die "could not install kernel-default-devel for $kver: update the kernel, reboot, re-provision"
    PY=/usr/bin/python3.11
    BCC_DIR=$(python3 -c 'import bcc, os; print(os.path.dirname(bcc.__file__))')
    ;;
  *) die "unsupported distribution $ID (supported: Ubuntu/Debian, openSUSE Leap/SLES)" ;;
esac

# --- 2. k3sprof -------------------------------------------------------------------------------
log "installing k3sprof into $PREFIX"
mkdir -p "$PREFIX"
rsync -a --delete --exclude .git --exclude .venv --exclude reports --exclude '*.egg-info' \
  --exclude __pycache__ --exclude .mypy_cache --exclude .ruff_cache --exclude .pytest_cache \
  "$SRC/" "$PREFIX/src/"
venv=$PREFIX/.venv
[ -x "$venv/bin/python" ] || "$PY" -m venv --system-site-packages "$venv"
if [ -n "$BCC_DIR" ]; then
  # Only the bcc package, not all of Python 3.6's site-packages.
  mkdir -p "$PREFIX/bcc-path"
  ln -sfn "$BCC_DIR" "$PREFIX/bcc-path/bcc"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$PREFIX/bcc-path" > "$site/k3sprof-bcc.pth"
fi
"$venv/bin/pip" install -q --disable-pip-version-check "$PREFIX/src"
ln -sfn "$venv/bin/k3sprof" /usr/local/bin/k3sprof
chmod 0755 "$PREFIX/src/vagrant/"*.sh
[ -e /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
if [ "$NEW_KERNEL" = yes ]; then
  log "skipping k3sprof doctor until the new kernel runs (the boot unit's journal will tell)"
elif ! k3sprof doctor; then
  die "k3sprof doctor says this VM cannot record (see above)"
fi

# --- 3. k3s -----------------------------------------------------------------------------------
args=("$ROLE")
if [ -n "${NODE_IP:-}" ]; then
  iface=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{split($4, a, "/")} a[1] == ip {print $2; exit}')
  [ -n "$iface" ] || die "no interface has NODE_IP $NODE_IP"
  args+=(--node-ip "$NODE_IP" --flannel-iface "$iface")
fi
export INSTALL_K3S_VERSION=$K3S_VERSION
# K3S_URL / K3S_TOKEN reach install.sh through the environment; it writes them to the unit's
# env file (root-only), never to the k3s command line.
[ -n "${K3S_TOKEN:-}" ] && export K3S_TOKEN
[ -n "${K3S_URL:-}" ] && export K3S_URL
if [ "$FIRST_BOOT" = cold ]; then
  export INSTALL_K3S_SKIP_START=true
fi
installed=$(k3s --version 2>/dev/null | awk 'NR==1 {print $3}' || true)
if [ "$installed" != "$K3S_VERSION" ]; then
  log "installing k3s $K3S_VERSION ($ROLE ${args[*]:1})"
  curl -sfL https://get.k3s.io -o /tmp/k3s-install.sh
  sh /tmp/k3s-install.sh "${args[@]}"
else
  log "k3s $K3S_VERSION already installed"
fi
unit=k3s.service
[ "$ROLE" = agent ] && unit=k3s-agent.service
if [ "$FIRST_BOOT" = warm ]; then
  log "first start of k3s (not traced): waiting until it serves, so the traced boot is a restart"
  for _ in $(seq 300); do
    curl -sf http://127.0.0.1:10248/healthz >/dev/null 2>&1 && break
    sleep 2
  done
  curl -sf http://127.0.0.1:10248/healthz >/dev/null || die "kubelet never became healthy: journalctl -u $unit"
fi

# --- 4. the boot unit -------------------------------------------------------------------------
end_args=()
[ -n "${BOOT_END:-}" ] && end_args=(--end "$BOOT_END")
k3sprof boot install --timeout "$BOOT_TIMEOUT" --keep "$BOOT_KEEP" "${end_args[@]}"
systemctl is-enabled --quiet k3sprof-boot.service || die "k3sprof-boot.service is not enabled"
log "ready: the next boot is traced (the host's run.sh reboots this VM)"
