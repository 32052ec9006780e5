"""The Vagrant lab's scripts, run for real against stand-ins for what only a VM has.

The waits in vagrant/lib.sh are run as the guest runs them (vagrant/wait-ready.sh, collect.sh)
against a local HTTPS server that plays k3s's supervisor port during a slow start (connection
refused, then /readyz failing, then ok; it demands the client certificate like k3s does) and a
stand-in `kubectl` on PATH that reports a node's Ready condition, first a stale one left over
from before this machine's boot, then a fresh one. The host-side helpers (reboot, collect) are
run against a stand-in `vagrant` on PATH that refuses to run anything with a tty and, for
collect, runs the real collect.sh here. No root, no VM, no fixed ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "vagrant"
BASH = shutil.which("bash") or "/bin/bash"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True, scope="module")
def _needs_curl_and_openssl() -> None:
    # curl comes with vagrant (a Depends of Debian's package), openssl with ca-certificates; in
    # CI a missing one is a broken setup, not a reason to skip.
    missing = [t for t in ("curl", "openssl") if shutil.which(t) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (Debian packages curl, openssl)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def boot_epoch() -> int:
    """This machine's boot time, as the kernel gives it (what lib.sh compares with)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise AssertionError("no btime in /proc/stat")


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- stand-in for k3s's supervisor port: refused, then /readyz failing, then ok --------------

SERVER = textwrap.dedent(
    """\
    import http.server, ssl, sys, time
    port, refuse_s, failing_s, tls_dir, log = (int(sys.argv[1]), float(sys.argv[2]),
                                               float(sys.argv[3]), sys.argv[4], sys.argv[5])
    t0 = time.time()
    time.sleep(refuse_s)  # nothing listens yet: connection refused
    FAILING = (b"[+]ping ok\\n[+]etcd ok\\n[-]poststarthook/rbac/bootstrap-roles failed: "
               b"reason withheld\\nreadyz check failed\\n")

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = time.time() - t0 >= refuse_s + failing_s
            code, body = (200, b"ok") if ok and self.path == "/readyz" else (500, FAILING)
            with open(log, "a") as f:
                f.write(f"{time.time():.3f} {self.path} {code}\\n")
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", port), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{tls_dir}/server-ca.crt", f"{tls_dir}/client-admin.key")
    ctx.verify_mode = ssl.CERT_REQUIRED  # like k3s: no anonymous /readyz
    ctx.load_verify_locations(f"{tls_dir}/server-ca.crt")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()
    """
)


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """k3s's server/tls layout with one self-signed cert for 127.0.0.1 as CA, server and client."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(d / "client-admin.key"), "-out", str(d / "server-ca.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copy(d / "server-ca.crt", d / "client-admin.crt")
    return d


class Supervisor:
    def __init__(self, tmp: Path, tls: Path, refuse_s: float, failing_s: float) -> None:
        self.port = free_port()
        self.log = tmp / "supervisor.log"
        script = tmp / "supervisor.py"
        script.write_text(SERVER)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(refuse_s), str(failing_s),
             str(tls), str(self.log)],
        )  # fmt: skip
        self.url = f"https://127.0.0.1:{self.port}"

    def answers(self) -> list[tuple[float, int]]:
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [(float(t), int(code)) for t, _path, code in rows]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# --- stand-in kubectl: the node's Ready condition, stale first, fresh from SWITCH_AT on ------

KUBECTL = textwrap.dedent(
    """\
    #!{python}
    import os, sys, time
    with open(os.environ["STANDIN_LOG"], "a") as f:
        f.write(f"{{time.time():.3f}} {{' '.join(sys.argv[1:])}}\\n")
    # only the call lib.sh makes is understood; anything else is a test failure
    if sys.argv[1:4] != ["get", "node", sys.argv[3]] or "lastHeartbeatTime" not in sys.argv[-1]:
        sys.exit("stand-in kubectl: unexpected call " + " ".join(sys.argv[1:]))
    if sys.argv[3] not in os.environ["STANDIN_NODES"].split():
        sys.exit('Error from server (NotFound): nodes "%s" not found' % sys.argv[3])
    fresh = time.time() >= float(os.environ["STANDIN_SWITCH_AT"])
    print(os.environ["STANDIN_FRESH" if fresh else "STANDIN_STALE"], end="")
    """
)


def standin_kubectl(tmp: Path) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    k = bin_dir / "kubectl"
    k.write_text(KUBECTL.format(python=sys.executable))
    k.chmod(0o755)
    return bin_dir


def env_for(
    tmp: Path,
    bin_dir: Path,
    *,
    api_url: str,
    tls: Path,
    stale: str,
    fresh: str,
    switch_at: float,
    timeout_s: int,
    nodes: str = "node-a",
) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LAB_API_URL": api_url,
        "LAB_K3S_TLS": str(tls),
        "LAB_WAIT_TIMEOUT": str(timeout_s),
        "LAB_POLL_S": "0.2",
        "STANDIN_LOG": str(tmp / "kubectl.log"),
        "STANDIN_NODES": nodes,
        "STANDIN_STALE": stale,
        "STANDIN_FRESH": fresh,
        "STANDIN_SWITCH_AT": str(switch_at),
    }


def kubectl_calls(tmp: Path) -> list[float]:
    log = tmp / "kubectl.log"
    return [float(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


def run(
    cmd: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- the waits -------------------------------------------------------------------------------


@pytest.mark.slow
def test_wait_ready_survives_a_slow_api_and_ignores_a_stale_ready(
    tmp_path: Path, tls_dir: Path
) -> None:
    # GIVEN an API that refuses for 2 s, then answers /readyz 500 for 2 s, then ok; and a node
    # whose Ready=True is from before this machine's boot until 3 s after the API is ok
    boot = boot_epoch()
    sup = Supervisor(tmp_path, tls_dir, refuse_s=2, failing_s=2)
    t0 = time.time()
    switch_at = t0 + 7
    try:
        env = env_for(
            tmp_path, standin_kubectl(tmp_path), api_url=sup.url, tls=tls_dir,
            stale=f"True {utc(boot - 900)} {utc(boot - 60)}",
            fresh=f"True {utc(switch_at)} {utc(switch_at)}",
            switch_at=switch_at, timeout_s=60,
        )  # fmt: skip
        # WHEN the guest's wait runs (what collect.sh and server-agent/run.sh use)
        r = run([str(LAB / "wait-ready.sh"), "node-a"], env)
        done = time.time()
    finally:
        sup.stop()
    # THEN it returns ok only after the fresh transition, having outlasted refused and 500s
    assert r.returncode == 0, r.stderr
    assert done >= switch_at
    answers = sup.answers()
    assert [c for _, c in answers if c == 500], "the wait never saw /readyz failing"
    first_ok = min(t for t, c in answers if c == 200)
    assert first_ok >= t0 + 4 - 0.5  # the stand-in's schedule held (refuse 2 s + failing 2 s)
    calls = kubectl_calls(tmp_path)
    # kubectl only once the API served (kubectl wait would have exited at "connection refused")
    assert calls and min(calls) >= first_ok
    # the stale Ready=True was seen and not taken: several polls before the switch
    assert len([c for c in calls if c < switch_at]) >= 3
    assert re.search(r"\[wait\] API server: ok after \d+ s \(\d+ tries\)", r.stderr)
    assert f"node node-a: Ready at {utc(switch_at)} (transition)" in r.stderr


def test_wait_ready_fails_at_its_deadline_with_the_stale_condition_named(
    tmp_path: Path, tls_dir: Path
) -> None:
    boot = boot_epoch()
    sup = Supervisor(tmp_path, tls_dir, refuse_s=0, failing_s=0)
    try:
        env = env_for(
            tmp_path, standin_kubectl(tmp_path), api_url=sup.url, tls=tls_dir,
            stale=f"True {utc(boot - 900)} {utc(boot - 60)}", fresh="unused",
            switch_at=time.time() + 3600, timeout_s=3,
        )  # fmt: skip
        t0 = time.time()
        r = run([str(LAB / "wait-ready.sh"), "node-a"], env)
        took = time.time() - t0
    finally:
        sup.stop()
    assert r.returncode != 0
    assert took >= 3  # it waited its deadline out
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("[wait] error: node node-a: gave up after 3 s"), r.stderr
    assert f"waiting for Ready from the boot that started {utc(boot)}" in last
    assert f"Ready=True but from before this boot (changed {utc(boot - 900)}" in last


def test_wait_api_gives_up_with_the_failing_readyz_checks(tmp_path: Path, tls_dir: Path) -> None:
    sup = Supervisor(tmp_path, tls_dir, refuse_s=0, failing_s=3600)
    try:
        env = env_for(
            tmp_path, standin_kubectl(tmp_path), api_url=sup.url, tls=tls_dir,
            stale="unused", fresh="unused", switch_at=0, timeout_s=2,
        )  # fmt: skip
        r = run([str(LAB / "wait-ready.sh"), "node-a"], env)
    finally:
        sup.stop()
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "[wait] error: API server: gave up after 2 s" in last
    assert f"{sup.url}/readyz" in last
    assert "HTTP 500: [-]poststarthook/rbac/bootstrap-roles failed" in last
    assert not kubectl_calls(tmp_path)  # never asked for the node while the API was not ready


def test_wait_api_names_a_refused_connection(tmp_path: Path, tls_dir: Path) -> None:
    port = free_port()  # nothing listens there
    env = env_for(
        tmp_path, standin_kubectl(tmp_path), api_url=f"https://127.0.0.1:{port}",
        tls=tls_dir, stale="unused", fresh="unused", switch_at=0, timeout_s=1,
    )  # fmt: skip
    r = run([str(LAB / "wait-ready.sh"), "node-a"], env)
    assert r.returncode != 0
    assert f"last answer: curl: (7) Failed to connect to 127.0.0.1 port {port}" in r.stderr


def test_wait_accepts_a_ready_that_never_left_true_when_this_boot_reported_it(
    tmp_path: Path, tls_dir: Path
) -> None:
    # A restart fast enough that the condition stayed True keeps the old lastTransitionTime; the
    # heartbeat of this boot's kubelet is then what proves it is this boot's Ready.
    boot = boot_epoch()
    sup = Supervisor(tmp_path, tls_dir, refuse_s=0, failing_s=0)
    now = time.time()
    try:
        env = env_for(
            tmp_path, standin_kubectl(tmp_path), api_url=sup.url, tls=tls_dir,
            stale="unused", fresh=f"True {utc(boot - 900)} {utc(now + 1)}",
            switch_at=0, timeout_s=20,
        )  # fmt: skip
        r = run([str(LAB / "wait-ready.sh"), "node-a"], env)
    finally:
        sup.stop()
    assert r.returncode == 0, r.stderr
    assert f"node node-a: Ready at {utc(now + 1)} (heartbeat)" in r.stderr


def test_wait_for_another_node_uses_that_nodes_boot_time(tmp_path: Path, tls_dir: Path) -> None:
    # server-agent: the server waits for the agent, whose boot started at a time the host read
    # from the agent; a Ready from before that moment is stale even if it is after ours.
    agent_boot = int(time.time()) - 30
    sup = Supervisor(tmp_path, tls_dir, refuse_s=0, failing_s=0)
    try:
        env = env_for(
            tmp_path, standin_kubectl(tmp_path), api_url=sup.url, tls=tls_dir,
            stale=f"True {utc(agent_boot - 5)} {utc(agent_boot - 5)}", fresh="unused",
            switch_at=time.time() + 3600, timeout_s=2, nodes="agent-1",
        )  # fmt: skip
        r = run([str(LAB / "wait-ready.sh"), f"agent-1={agent_boot}"], env)
    finally:
        sup.stop()
    assert r.returncode != 0
    assert "node agent-1: gave up after 2 s" in r.stderr
    assert f"the boot that started {utc(agent_boot)}" in r.stderr


# --- errors reach the user -------------------------------------------------------------------


def bash_with_lib(body: str) -> list[str]:
    return [BASH, "-c", f"set -euo pipefail\n. {LAB / 'lib.sh'}\n{body}"]


def test_a_failing_step_says_what_it_was_doing() -> None:
    r = run(
        bash_with_lib(
            'step "installing k3s" step "fetching the install script" '
            "sh -c \"echo 'curl: (6) Could not resolve host: get.k3s.io' >&2; exit 6\"\n"
            "echo not reached"
        ),
        dict(os.environ),
    )
    assert r.returncode == 6
    assert "not reached" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert lines[-2] == "curl: (6) Could not resolve host: get.k3s.io"  # the tool's own words
    assert lines[-1] == "[lab] failed during: installing k3s: fetching the install script (exit 6)"


def test_a_step_that_succeeds_leaves_no_context_behind() -> None:
    r = run(bash_with_lib('step "first" true\nlab_die "later problem"'), dict(os.environ))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "[lab] error: later problem"


STANDIN_VAGRANT = textwrap.dedent(
    """\
    #!{python}
    # Stand-in vagrant: `vagrant ssh M --no-tty -c CMD -- -T ...` only (a tty mixes stderr into
    # stdout). State in $STANDIN_STATE: the boot id, and reboots that take N failed connects.
    import json, os, subprocess, sys
    state_file = os.environ["STANDIN_STATE"]
    st = json.load(open(state_file))
    a = sys.argv[1:]
    st["calls"].append(a)
    def save():
        json.dump(st, open(state_file, "w"))
    if a[:1] != ["ssh"]:
        save(); sys.exit("stand-in vagrant: unexpected " + " ".join(a))
    if "--no-tty" not in a or "-T" not in a[a.index("--"):]:
        save(); sys.exit("stand-in vagrant: ssh with a tty")
    cmd = a[a.index("-c") + 1]
    if cmd == "sudo systemctl reboot":
        st["down"] = st["reboot_takes"]; st["boot_id"] = st["next_boot_id"]; save()
        sys.exit(255)  # the session is cut
    if st.get("down", 0) > 0:
        st["down"] -= 1; save()
        sys.stderr.write("ssh: connect to host 192.168.121.5 port 22: Connection refused\\n")
        sys.exit(255)
    save()
    if cmd == "cat /proc/sys/kernel/random/boot_id":
        print(st["boot_id"]); sys.exit(0)
    prefix = "sudo /opt/k3sprof/src/vagrant/collect.sh"
    if cmd.startswith(prefix):  # the guest's real collect.sh, run here
        collect = os.environ["STANDIN_LAB"] + "/collect.sh"
        sys.exit(subprocess.call([collect, *cmd[len(prefix):].split()]))
    sys.exit("stand-in vagrant: unexpected command " + cmd)
    """
)


def standin_vagrant(tmp: Path, **state: object) -> tuple[Path, Path]:
    import json

    bin_dir = tmp / "vbin"
    bin_dir.mkdir()
    v = bin_dir / "vagrant"
    v.write_text(STANDIN_VAGRANT.format(python=sys.executable))
    v.chmod(0o755)
    state_file = tmp / "vagrant-state.json"
    state_file.write_text(json.dumps({"calls": [], **state}))
    return bin_dir, state_file


def test_reboot_inside_the_guest_waits_for_a_new_boot_id(tmp_path: Path) -> None:
    import json

    bin_dir, state = standin_vagrant(
        tmp_path, boot_id="old-id", next_boot_id="new-id", reboot_takes=3
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STANDIN_STATE": str(state),
        "LAB_POLL_S": "0.1",
        "LAB_WAIT_TIMEOUT": "30",
    }
    r = run(bash_with_lib("lab_reboot default"), env)
    assert r.returncode == 0, r.stderr
    assert "[lab] default: up again, boot id new-id" in r.stderr
    cmds = [c[c.index("-c") + 1] for c in json.loads(state.read_text())["calls"]]
    # read the old id, reboot in the guest, 3 refused connects, then the new id: no vagrant reload
    assert (
        cmds
        == ["cat /proc/sys/kernel/random/boot_id", "sudo systemctl reboot"]
        + ["cat /proc/sys/kernel/random/boot_id"] * 4
    )


def test_reboot_gives_up_when_the_boot_id_never_changes(tmp_path: Path) -> None:
    bin_dir, state = standin_vagrant(
        tmp_path, boot_id="old-id", next_boot_id="old-id", reboot_takes=0
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STANDIN_STATE": str(state),
        "LAB_POLL_S": "0.2",
        "LAB_WAIT_TIMEOUT": "1",
    }
    r = run(bash_with_lib('step "traced boot 1/1 of default" lab_reboot default'), env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-2] == (
        "[lab] error: default: no SSH answer with a new boot id 1 s after systemctl reboot "
        "(old boot id old-id)"
    )
    assert lines[-1] == "[lab] failed during: traced boot 1/1 of default (exit 1)"


def test_collect_errors_in_the_guest_reach_the_hosts_stderr(tmp_path: Path, tls_dir: Path) -> None:
    # The host's lab_collect runs the real collect.sh (through the stand-in vagrant); its wait
    # gives up because the API never serves. Both the guest's words and both steps reach the
    # host's stderr, and the host does not go on to scp a tarball that does not exist.
    bin_dir, state = standin_vagrant(tmp_path, boot_id="x", next_boot_id="x", reboot_takes=0)
    port = free_port()  # nothing listens there
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STANDIN_STATE": str(state),
        "STANDIN_LAB": str(LAB),
        "LAB_API_URL": f"https://127.0.0.1:{port}",
        "LAB_K3S_TLS": str(tls_dir),
        "LAB_POLL_S": "0.2",
        "LAB_WAIT_TIMEOUT": "1",
    }
    r = run(
        bash_with_lib(f'step "collecting the run of default" lab_collect default {tmp_path}'), env
    )
    assert r.returncode == 1
    err = r.stderr
    assert re.search(
        rf"\[collect [^]]+\] error: API server: gave up after 1 s .* last answer: curl: \(7\) "
        rf"Failed to connect to 127.0.0.1 port {port}",
        err,
    ), err
    assert re.search(
        r"\[collect [^]]+\] failed during: waiting for the API server, then for node \S+ to be "
        r"Ready in this boot \(exit 1\)",
        err,
    ), err
    assert (
        err.strip().splitlines()[-1]
        == "[lab] failed during: collecting the run of default (exit 1)"
    )
    assert "\r" not in err


# --- what the scripts are made of ------------------------------------------------------------


def test_no_script_uses_the_fragile_patterns() -> None:
    scripts = {p.relative_to(LAB).as_posix(): p.read_text() for p in LAB.rglob("*.sh")}
    for name, text in scripts.items():
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "kubectl wait" not in code, f"{name}: kubectl wait exits at once on a refused API"
        assert "vagrant reload" not in code, (
            f"{name}: reload reruns Vagrant's rsync in the traced boot"
        )
        assert not re.search(r"vagrant ssh (?!\"\$1\" --no-tty)", code), (
            f"{name}: use lab_ssh (no tty)"
        )
        assert "| tail -n 1 | tr -d" not in code, name
    # the guest's waits are the tested functions
    assert "lab_wait_ready" in scripts["collect.sh"]
    assert "wait-ready.sh" in scripts["server-agent/run.sh"]
    for name in ("single/run.sh", "compare/run.sh"):
        assert "lab_reboot" in scripts[name]


def test_vagrantfiles_pin_the_same_box_versions() -> None:
    # Box names as k3s's own e2e Vagrantfiles use them (bento/ubuntu-24.04 by default,
    # opensuse/Leap-15.6.x86_64 for SUSE), each pinned to a version, identical in every scenario.
    tables = {}
    for vf in sorted(LAB.glob("*/Vagrantfile")):
        text = vf.read_text()
        pins = dict(re.findall(r'^\s*"([\w./-]+)" => "([\d.]+)",', text, re.M))
        assert "box_version = BOX_VERSION" in text.replace("m.vm.", "config.vm.") or (
            "config.vm.box_version = BOX_VERSION" in text
        ), vf
        tables[vf.parent.name] = pins
    assert set(tables) == {"compare", "server-agent", "single"}
    first = tables["single"]
    assert {"bento/ubuntu-24.04", "opensuse/Leap-15.6.x86_64"} <= set(first)
    assert all(t == first for t in tables.values()), tables


@pytest.mark.skipif(
    shutil.which("vagrant") is None, reason="vagrant not installed (Debian package vagrant)"
)
def test_vagrant_reads_the_pinned_box_version(tmp_path: Path) -> None:
    # vagrant validate parses box_version: a malformed one fails, so the pin is really applied
    # (and the pinned ones above passed the same check in test_boot's validate test).
    env = {
        **os.environ,
        "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"),
        "VAGRANT_HOME": str(tmp_path / "home"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "BOX_VERSION": "not-a-version",
    }
    r = subprocess.run(
        ["vagrant", "validate", "--ignore-provider", "--no-color"],
        cwd=LAB / "single",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode != 0
    assert "box version provided (not-a-version) is incorrect" in r.stdout + r.stderr


# --- k3sprof into the guest's venv (provision.sh) ----------------------------------------------


@pytest.fixture(scope="module")
def k3sprof_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what provision.sh rsyncs into the guest and installs (nothing is built here)."""
    src = tmp_path_factory.mktemp("src") / "src"
    src.mkdir()
    root = LAB.parent
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for name in ("tracer", "bpf"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def guest_venv(where: Path, with_deps: bool) -> Path:
    """A venv made as provision.sh makes it (the OS's python3, --system-site-packages). With
    deps: the real dependencies installed in this checkout's .venv are made visible to it (a
    .pth file), standing in for the ones the lab's box bakes in."""
    venv = where / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, capture_output=True, timeout=120)
    if with_deps:
        import sysconfig

        site = subprocess.run([str(venv / "bin/python"), "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def offline_env() -> dict[str, str]:
    # no index, no config: whatever pip needs must already be there
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
            "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no /usr/bin/python3")
def test_a_venv_with_the_dependencies_gets_k3sprof_alone(tmp_path: Path, k3sprof_src: Path) -> None:
    venv = guest_venv(tmp_path, with_deps=True)
    r = run(bash_with_lib(f"lab_pip_install_k3sprof {venv} {k3sprof_src}"), offline_env(),
            timeout=300)
    assert r.returncode == 0, r.stderr
    assert "k3sprof's dependencies: all in" in r.stderr, r.stderr
    assert not (k3sprof_src / "build").exists()
    # a plain install (not editable): the recorder's BPF sources come from the venv
    q = subprocess.run([str(venv / "bin/python"), "-c",
                        "import tracer.collector.probes as p; print(p.BPF_DIR)"],
                       capture_output=True, text=True, cwd=tmp_path, check=False)
    assert q.returncode == 0, q.stderr
    bpf_dir = Path(q.stdout.strip())
    assert bpf_dir.is_relative_to(venv) and (bpf_dir / "k3sprof.bpf.c").is_file(), bpf_dir
    assert (venv / "bin/k3sprof").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no /usr/bin/python3")
def test_a_venv_without_the_dependencies_gets_them_from_the_index(
    tmp_path: Path, k3sprof_src: Path
) -> None:
    # users' boxes: the same function asks pip for what is missing; with the index switched
    # off here, pip's own "no matching distribution" shows that it did ask
    venv = guest_venv(tmp_path, with_deps=False)
    r = run(bash_with_lib(f"lab_pip_install_k3sprof {venv} {k3sprof_src}"), offline_env(),
            timeout=300)
    assert r.returncode != 0
    want = r"installing what \S+ lacks \(pip\): k3sprof 0\.1\.0 requires \w+"
    assert re.search(want, r.stderr), r.stderr
    assert "No matching distribution found for" in r.stderr, r.stderr


# --- k3s.service for the offline install -----------------------------------------------------


def unit_entries(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


@pytest.mark.parametrize("role", ["server", "agent"])
def test_offline_unit_has_the_install_scripts_shape(tmp_path: Path, role: str) -> None:
    k3s = tmp_path / "k3s"
    k3s.write_text("#!/bin/sh\n")
    k3s.chmod(0o755)
    r = run(
        bash_with_lib(f"lab_write_k3s_unit {role} {k3s} {tmp_path} --node-ip 10.0.0.5"),
        dict(os.environ),
    )
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    assert name == {"server": "k3s.service", "agent": "k3s-agent.service"}[role]
    unit = tmp_path / name
    e = unit_entries(unit.read_text())
    assert e["Type"] == ["notify" if role == "server" else "exec"]
    # the install script's three, in its order: nm-cloud-setup must be off, then the modprobes
    assert e["ExecStartPre"] == [
        "/bin/sh -xc '! /usr/bin/systemctl is-enabled --quiet nm-cloud-setup.service 2>/dev/null'",
        "-/sbin/modprobe br_netfilter",
        "-/sbin/modprobe overlay",
    ]
    assert "User" not in e  # root by default, as install.sh leaves it
    assert e["Restart"] == ["always"] and e["RestartSec"] == ["5s"]
    assert e["KillMode"] == ["process"] and e["Delegate"] == ["yes"]
    assert e["LimitNOFILE"] == ["1048576"] and e["TasksMax"] == ["infinity"]
    assert e["TimeoutStartSec"] == ["0"]
    assert e["ExecStart"] == [f"{k3s} '{role}' '--node-ip' '10.0.0.5'"]
    assert f"-{tmp_path}/{name}.env" in e["EnvironmentFile"]
    env_file = tmp_path / f"{name}.env"
    assert env_file.exists() and (env_file.stat().st_mode & 0o077) == 0  # tokens go there
    if shutil.which("systemd-analyze"):
        v = subprocess.run(
            ["systemd-analyze", "verify", str(unit)],
            capture_output=True,
            text=True,
            env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
            check=False,
        )
        assert v.returncode == 0, v.stderr
        assert "Unknown key" not in v.stderr and "Invalid" not in v.stderr, v.stderr


# --- SUSE headers by the running kernel's package version ------------------------------------

RPM = textwrap.dedent(
    """\
    #!/bin/sh
    # Stand-in rpm with what a Leap 15.6 box answers for `rpm -qf --qf '%{{NAME}} ...' FILE...`:
    # the kernel package's VERSION-RELEASE carries a release suffix uname -r does not show.
    [ "$1" = -qf ] || exit 2
    shift 3
    for f in "$@"; do
      case "$f" in
        /boot/vmlinuz-{kver}) echo "kernel-default 6.4.0-150600.23.25.1" ;;
        /lib/modules/{kver}) echo "kernel-default 6.4.0-150600.23.25.1" ;;
        *) echo "file $f is not owned by any package"; rc=1 ;;
      esac
    done
    exit ${{rc:-0}}
    """
)


@pytest.mark.parametrize(
    ("kver", "want"),
    [
        ("6.4.0-150600.23.25-default", "kernel-default-devel=6.4.0-150600.23.25.1"),
        ("6.4.0-150600.21-default", None),  # a kernel no package owns: a clear error
    ],
)
def test_suse_headers_are_asked_from_rpm_not_guessed_from_uname(
    tmp_path: Path, kver: str, want: str | None
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rpm").write_text(RPM.format(kver="6.4.0-150600.23.25-default"))
    (bin_dir / "rpm").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = run(bash_with_lib(f"lab_suse_kernel_devel {kver}"), env)
    if want is None:
        assert r.returncode != 0
        assert f"no installed kernel-default package owns /boot/vmlinuz-{kver}" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == want
        assert want != f"kernel-default-devel={kver.removesuffix('-default')}"  # the old guess


# --- make lab-test's own pieces ---------------------------------------------------------------

ROOT = LAB.parent


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_lab_test_scripts_pass_shellcheck() -> None:
    r = subprocess.run(["shellcheck", str(ROOT / "tests/lab/labns.sh"),
                        str(ROOT / "scripts/lab-setup.sh")], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stdout


def test_standin_k3s_version_reads_as_provision_reads_it() -> None:
    # provision.sh and collect.sh take k3s's version from `k3s --version` (3rd word, 1st line)
    standin = ROOT / "tests/lab/k3s-standin"
    r = subprocess.run([sys.executable, str(standin), "--version"], capture_output=True,
                       text=True, check=True)
    assert r.stdout.splitlines()[0].split()[2] == "v0.0.0+standin"
    # anything it does not play fails loudly instead of pretending
    r = subprocess.run([sys.executable, str(standin), "agent"], capture_output=True, text=True,
                       check=False)
    assert r.returncode != 0 and "STAND-IN" in r.stderr


# Evaluates a Vagrantfile in plain Ruby (no Vagrant, no provider, no box) with a stand-in
# `Vagrant.configure` whose config object records every setting by its path, e.g.
# config.vm.define(a).vm.provider(libvirt).cpus => 2, and prints them as JSON.
VAGRANTFILE_RECORDER = textwrap.dedent(
    """\
    require "json"
    SETTINGS = {}
    class Recorder
      def initialize(path) @path = path end
      def respond_to_missing?(*) true end
      def method_missing(name, *args, **_kw, &blk)
        path = "#{@path}.#{name.to_s.chomp("=")}"
        if name.to_s.end_with?("=")
          SETTINGS[path] = args[0]
          return args[0]
        end
        path = "#{path}(#{args.join(",")})" unless args.empty?
        blk&.call(Recorder.new(path))
        Recorder.new(path)
      end
    end
    module Vagrant
      def self.configure(_version) yield Recorder.new("config") end
    end
    load ARGV[0]
    puts JSON.generate(SETTINGS)
    """
)


def vagrantfile_settings(name: str, env: dict[str, str]) -> dict[str, object]:
    ruby = shutil.which("ruby")
    if ruby is None:  # a failure in CI (tests/conftest.py): vagrant depends on ruby
        pytest.skip("ruby not installed (Debian package ruby, a dependency of vagrant)")
    r = subprocess.run([ruby, "-e", VAGRANTFILE_RECORDER, str(LAB / name / "Vagrantfile")],
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    settings: dict[str, object] = json.loads(r.stdout)
    return settings


def provider_settings(settings: dict[str, object], provider: str) -> dict[str, dict[str, object]]:
    """{machine: {setting: value}} of one provider ("" = the scenario-wide config)."""
    out: dict[str, dict[str, object]] = {}
    for path, value in settings.items():
        m = re.fullmatch(rf"config(?:\.vm\.define\((\w+)[^)]*\))?\.vm\.provider\({provider}\)"
                         r"\.(\w+)", path)
        if m:
            out.setdefault(m.group(1) or "", {})[m.group(2)] = value
    return out


#: what users get (no LAB_* variable set): VM size only, per machine
USERS_PROVIDERS = {
    "single": {"": {"cpus": 2, "memory": 4096}},
    "compare": {"": {"cpus": 2, "memory": 4096}},
    "server-agent": {"server": {"cpus": 2, "memory": 4096}, "agent": {"cpus": 2, "memory": 2048}},
}


@pytest.mark.parametrize("name", sorted(USERS_PROVIDERS))
def test_libvirt_tcg_override_leaves_the_default_alone(name: str) -> None:
    # users get vagrant-libvirt's default driver (kvm) and CPU model: the qemu/TCG settings
    # (vagrant/lib/provider.rb, shared by every Vagrantfile) apply only when LAB_LIBVIRT_DRIVER
    # is set (make lab-test)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "CPUS", "MEMORY"))}
    users = vagrantfile_settings(name, base)
    assert provider_settings(users, "libvirt") == USERS_PROVIDERS[name]
    assert provider_settings(users, "virtualbox") == USERS_PROVIDERS[name]
    lab = vagrantfile_settings(name, {**base, "LAB_LIBVIRT_DRIVER": "qemu", "MEMORY": "2048"})
    tcg = {"driver": "qemu", "cpu_mode": "custom", "cpu_model": "Nehalem"}
    for machine, want in USERS_PROVIDERS[name].items():
        got = provider_settings(lab, "libvirt")[machine]
        memory = want["memory"] if machine == "server" else 2048  # MEMORY is not the server's
        assert got == {**want, "memory": memory, **tcg}, (machine, got)
    assert provider_settings(lab, "virtualbox").keys() == USERS_PROVIDERS[name].keys()
    # the settings live in one place: no Vagrantfile sets a provider option itself
    text = (LAB / name / "Vagrantfile").read_text()
    assert 'require_relative "../lib/provider"' in text
    assert not re.search(r"\b(lv|vb)\.\w+ =", text), "provider settings belong in lib/provider.rb"
