#!/usr/bin/env bash
# Single-node lab: provision, reboot RUNS times inside the guest, bring each traced boot home to
# reports/<box>/<k3s-version>/.   Usage: [BOX=...] [K3S_VERSION=...] [RUNS=N] ./run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
lab_require

export BOX K3S_VERSION=${K3S_VERSION:-v1.32.4+k3s1}
RUNS=${RUNS:-1}
cd "$here"
dest=$(lab_report_dir "$K3S_VERSION")

step "provisioning $BOX with k3s $K3S_VERSION (vagrant up --provision)" vagrant up --provision
for i in $(seq "$RUNS"); do
  step "traced boot $i/$RUNS: rebooting the VM from inside (systemctl reboot)" lab_reboot default
  step "traced boot $i/$RUNS: collecting the run" lab_collect default "$dest"
done
run=$(lab_newest_run "$dest")
lab_log "done: $run"
[ -f "$run/report.html" ] && lab_log "open $run/report.html"
lab_log "stop the VM with: (cd $here && vagrant halt)   remove it with: vagrant destroy -f"
