#!/usr/bin/env bash
# Server + agent lab: provision both (the agent joins), then boot the AGENT first and the
# server AGENT_HEAD_START seconds later, so the agent's trace shows its wait on the server.
# Results: reports/<box>/<k3s-version>/server-agent/{server,agent}/.
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

lab_log "provisioning server and agent ($BOX, k3s $K3S_VERSION)"
vagrant up server --provision
vagrant up agent --provision

lab_log "traced boot: agent first, the server ${AGENT_HEAD_START} s later"
vagrant halt agent server
vagrant up agent --no-provision
sleep "$AGENT_HEAD_START"
vagrant up server --no-provision
vagrant ssh server -c 'sudo k3s kubectl wait --for=condition=Ready node --all --timeout=600s' >&2

lab_collect server "$(lab_report_dir "$K3S_VERSION" server-agent/server)"
lab_collect agent "$(lab_report_dir "$K3S_VERSION" server-agent/agent)" --no-wait
# The agent cannot ask the API server: its node's Ready time comes from the server.
agent_dir=$(lab_newest_run "$(lab_report_dir "$K3S_VERSION" server-agent/agent)")
vagrant ssh server -c "sudo k3s kubectl get node k3sprof-agent -o json" > "$agent_dir/lab/node.json"
lab_log "done: reports/${BOX//\//_}/$K3S_VERSION/server-agent/"
