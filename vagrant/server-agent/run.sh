#!/usr/bin/env bash
# Server + agent lab: provision both (the agent joins), then power the server off, reboot the
# AGENT from inside, and power the server on AGENT_HEAD_START seconds later, so the agent's trace
# shows its wait on the server. Results: reports/<box>/<k3s-version>/server-agent/{server,agent}/.
#   Usage: [BOX=...] [K3S_VERSION=...] [AGENT_HEAD_START=S] ./run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
lab_require

export BOX K3S_VERSION=${K3S_VERSION:-v1.32.4+k3s1}
AGENT_HEAD_START=${AGENT_HEAD_START:-30}
cd "$here"
# One join secret per lab, kept out of the repo (install.sh puts it in a root-only env file).
token_file=$here/.vagrant/k3s-token
mkdir -p "$here/.vagrant"
[ -s "$token_file" ] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file")
K3S_TOKEN=$(cat "$token_file")
export K3S_TOKEN

step "provisioning the server ($BOX, k3s $K3S_VERSION)" vagrant up server --provision
step "provisioning the agent ($BOX, k3s $K3S_VERSION)" vagrant up agent --provision

lab_log "traced boot: agent first, the server ${AGENT_HEAD_START} s later"
step "powering the server off" vagrant halt server
step "rebooting the agent from inside (systemctl reboot)" lab_reboot agent
# The agent's boot started at its kernel's btime; its Ready must be newer than that.
agent_boot=$(lab_ssh agent "awk '/^btime/ {print \$2}' /proc/stat")
case "$agent_boot" in ''|*[!0-9]*) lab_die "could not read the agent's boot time (got: ${agent_boot:-nothing})" ;; esac
sleep "$AGENT_HEAD_START"
# No rsync in the server's traced boot. (vagrant up still sets the hostname and the private
# network over SSH once the server answers: see README, caveats.)
LAB_NO_SYNC=1 step "powering the server on" vagrant up server --no-provision
step "waiting on the server for the API and for both nodes to be Ready in their current boots" \
  lab_ssh server "sudo /opt/k3sprof/src/vagrant/wait-ready.sh k3sprof-server k3sprof-agent=$agent_boot"

step "collecting the server's run" lab_collect server "$(lab_report_dir "$K3S_VERSION" server-agent/server)"
step "collecting the agent's run" lab_collect agent "$(lab_report_dir "$K3S_VERSION" server-agent/agent)" --no-wait
# The agent cannot ask the API server: its node's Ready time comes from the server.
agent_dir=$(lab_newest_run "$(lab_report_dir "$K3S_VERSION" server-agent/agent)")
step "fetching the agent's node object from the server" \
  lab_ssh server "sudo kubectl get node k3sprof-agent -o json" > "$agent_dir/lab/node.json"
lab_log "done: reports/${BOX//\//_}/$K3S_VERSION/server-agent/"
