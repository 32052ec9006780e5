#!/usr/bin/env bash
# Version comparison lab: trace a boot of k3s A and of k3s B on identical VMs, one VM at a
# time, then `k3sprof compare A B`.   Usage: [BOX=...] [K3S_VERSION_A=...] [K3S_VERSION_B=...] [RUNS=N] ./run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
lab_require

export BOX K3S_VERSION_A=${K3S_VERSION_A:-v1.32.3+k3s1} K3S_VERSION_B=${K3S_VERSION_B:-v1.32.4+k3s1}
RUNS=${RUNS:-1}
cd "$here"

declare -A version=([a]=$K3S_VERSION_A [b]=$K3S_VERSION_B)
for m in a b; do
  dest=$(lab_report_dir "${version[$m]}")
  step "$m: provisioning $BOX with k3s ${version[$m]} (vagrant up --provision)" vagrant up "$m" --provision
  for i in $(seq "$RUNS"); do
    step "$m: traced boot $i/$RUNS: rebooting the VM from inside (systemctl reboot)" lab_reboot "$m"
    step "$m: traced boot $i/$RUNS: collecting the run" lab_collect "$m" "$dest"
  done
  step "$m: halting it, so the other version boots alone" vagrant halt "$m"
done

run_a=$(lab_newest_run "$(lab_report_dir "$K3S_VERSION_A")")
run_b=$(lab_newest_run "$(lab_report_dir "$K3S_VERSION_B")")
out=$(lab_report_dir "compare-$K3S_VERSION_A-vs-$K3S_VERSION_B")
k3sprof=$(lab_host_k3sprof)
if [ -n "$k3sprof" ]; then
  step "comparing on the host with $k3sprof" \
    "$k3sprof" compare "$run_a/trace" "$run_b/trace" --json -o "$out/compare.html" > "$out/compare.json"
else
  # No k3sprof on the host: compare inside VM b, which has it.
  lab_log "comparing inside VM b (no k3sprof on the host)"
  LAB_NO_SYNC=1 step "starting VM b" vagrant up b --no-provision
  cfg=$(mktemp)
  vagrant ssh-config b > "$cfg"
  tmp=$(mktemp -d)
  tar -C "$run_a" -czf "$tmp/a.tar.gz" trace
  tar -C "$run_b" -czf "$tmp/b.tar.gz" trace
  scp -q -F "$cfg" "$tmp/a.tar.gz" "$tmp/b.tar.gz" b:/tmp/
  step "comparing inside VM b" lab_ssh b 'set -e; sudo rm -rf /tmp/cmp; mkdir -p /tmp/cmp/a /tmp/cmp/b
    tar -C /tmp/cmp/a -xzf /tmp/a.tar.gz; tar -C /tmp/cmp/b -xzf /tmp/b.tar.gz
    sudo k3sprof compare /tmp/cmp/a/trace /tmp/cmp/b/trace --json -o /tmp/cmp/compare.html > /tmp/cmp/compare.json
    sudo chmod a+r /tmp/cmp/compare.html'
  scp -q -F "$cfg" b:/tmp/cmp/compare.html b:/tmp/cmp/compare.json "$out/"
  rm -rf "$cfg" "$tmp"
  vagrant halt b
fi
printf '%s\n%s\n' "$run_a" "$run_b" > "$out/inputs.txt"
lab_log "done: $out/compare.html (A = $run_a, B = $run_b)"
