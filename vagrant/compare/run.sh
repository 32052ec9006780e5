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

# The RUNS newest boots of each version (this invocation's): with several per side, compare
# gives each metric's median, p10/p90 and the B - A difference with a 95 % interval
# (docs/runs.md); with one per side it is the two-run comparison.
newest_runs() {  # DIR N
  find "$1" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*-*' | sort | tail -n "$2"
}
mapfile -t runs_a < <(newest_runs "$(lab_report_dir "$K3S_VERSION_A")" "$RUNS")
mapfile -t runs_b < <(newest_runs "$(lab_report_dir "$K3S_VERSION_B")" "$RUNS")
if [ "${#runs_a[@]}" -eq 0 ] || [ "${#runs_b[@]}" -eq 0 ]; then
  lab_die "no recorded run of A or B to compare"
fi
out=$(lab_report_dir "compare-$K3S_VERSION_A-vs-$K3S_VERSION_B")
k3sprof=$(lab_host_k3sprof)
if [ -n "$k3sprof" ]; then
  args=()
  for r in "${runs_a[@]}"; do args+=(--a "$r/trace"); done
  for r in "${runs_b[@]}"; do args+=(--b "$r/trace"); done
  step "comparing ${#runs_a[@]} runs of A with ${#runs_b[@]} runs of B on the host with $k3sprof" \
    "$k3sprof" compare "${args[@]}" --json -o "$out/compare.html" --force > "$out/compare.json"
else
  # No k3sprof on the host: compare inside VM b, which has it.
  lab_log "comparing inside VM b (no k3sprof on the host)"
  LAB_NO_SYNC=1 step "starting VM b" vagrant up b --no-provision
  cfg=$(mktemp)
  vagrant ssh-config b > "$cfg"
  tmp=$(mktemp -d)
  mkdir -p "$tmp/a" "$tmp/b"
  for r in "${runs_a[@]}"; do cp -r "$r/trace" "$tmp/a/$(basename "$r")"; done
  for r in "${runs_b[@]}"; do cp -r "$r/trace" "$tmp/b/$(basename "$r")"; done
  tar -C "$tmp" -czf "$tmp/runs.tar.gz" a b
  scp -q -F "$cfg" "$tmp/runs.tar.gz" b:/tmp/
  # each side is a directory of traces: compare takes every trace under it
  step "comparing inside VM b" lab_ssh b 'set -e; sudo rm -rf /tmp/cmp; mkdir -p /tmp/cmp
    tar -C /tmp/cmp -xzf /tmp/runs.tar.gz
    sudo k3sprof compare /tmp/cmp/a /tmp/cmp/b --json -o /tmp/cmp/compare.html > /tmp/cmp/compare.json
    sudo chmod a+r /tmp/cmp/compare.html'
  scp -q -F "$cfg" b:/tmp/cmp/compare.html b:/tmp/cmp/compare.json "$out/"
  rm -rf "$cfg" "$tmp"
  vagrant halt b
fi
printf 'A %s\n' "${runs_a[@]}" > "$out/inputs.txt"
printf 'B %s\n' "${runs_b[@]}" >> "$out/inputs.txt"
lab_log "done: $out/compare.html (A: ${#runs_a[@]} runs, B: ${#runs_b[@]} runs; $out/inputs.txt)"
