#!/usr/bin/env bash
# Host-side helpers for the lab's run.sh scripts (sourced, not run).
# shellcheck disable=SC2034  # variables are used by the scripts that source this file

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
BOX=${BOX:-bento/ubuntu-24.04}

lab_log() { printf '[lab] %s\n' "$*" >&2; }
lab_die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

lab_require() {
  command -v vagrant >/dev/null || lab_die "vagrant is not installed (https://developer.hashicorp.com/vagrant/install)"
  command -v scp >/dev/null || lab_die "scp (OpenSSH client) is needed to bring traces home"
}

# reports/<box>/<k3s-version>/: a box name's "/" becomes "_" so every result is two levels deep.
lab_report_dir() {  # VERSION [SUBDIR]
  local d="$REPO_DIR/reports/${BOX//\//_}/$1"
  [ -n "${2:-}" ] && d="$d/$2"
  mkdir -p "$d"
  printf '%s\n' "$d"
}

# Run collect.sh in MACHINE and unpack its tarball into DEST (one directory per recorded boot).
lab_collect() {  # MACHINE DEST [collect.sh args...]
  local machine=$1 dest=$2 remote cfg
  shift 2
  remote=$(vagrant ssh "$machine" -c "sudo /opt/k3sprof/src/vagrant/collect.sh $*" | tail -n 1 | tr -d '\r')
  [ -n "$remote" ] || lab_die "collect.sh in $machine printed no tarball path"
  cfg=$(mktemp)
  vagrant ssh-config "$machine" > "$cfg"
  scp -q -F "$cfg" "$machine:$remote" "$dest/.collect.tar.gz"
  rm -f "$cfg"
  tar -C "$dest" -xzf "$dest/.collect.tar.gz"
  rm -f "$dest/.collect.tar.gz"
  lab_log "$machine: $(lab_newest_run "$dest")"
}

# The newest run directory under DIR (names start with a zero-padded sequence number).
lab_newest_run() {  # DIR
  find "$1" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*-*' | sort | tail -n 1
}

# A k3sprof that runs on the host (no BCC needed to compare): the repo's venv if set up.
lab_host_k3sprof() {
  if [ -x "$REPO_DIR/.venv/bin/k3sprof" ]; then printf '%s\n' "$REPO_DIR/.venv/bin/k3sprof";
  elif command -v k3sprof >/dev/null; then command -v k3sprof;
  fi
}
