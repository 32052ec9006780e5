"""A k3s-SHAPED startup for a real recording (there is no k3s binary here).

Built from the real k3s v1.32.4 sequencing (docs/k3s-startup.md §2.1, §5, §6, §8): one
`k3s-server` process whose goroutines are threads here, a `containerd` child, real `modprobe`
execs. Run it through symlinks so the kernel names the processes like k3s's own multicall
binary does: WORKDIR/k3s -> /usr/bin/python3 (the wrapper, which execs WORKDIR/k3s-server in the
same pid, like cmd/k3s's syscall.Exec) and WORKDIR/containerd -> /usr/bin/python3.

    WORKDIR/k3s THIS_FILE wrapper --workdir D --interval S --ports JSON --truth FILE

Every milestone's time.monotonic_ns() (the trace's clock) goes to the truth JSON file, so a test
checks the analyzer against what happened, not against itself. Logs are logrus/klog lines on
stderr, worded like k3s's (the recorder captures them into the trace's log table).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION = "v1.32.4+k3s1"
COMMIT = "6b330558"
CRI_INTERVAL_S = 0.1  # k3s's is 1 s (pkg/agent/cri WaitForService); shortened for a fast test
CONTAINERD_DELAY_S = 0.35  # containerd's own startup before its socket listens
APISERVER_WARMUP_S = 0.3  # kube-apiserver: listen on :6444 -> readyz could answer 200 ...
READY_AFTER_POLL_S = 0.03  # ... placed just after a failed poll: the worst-case poll lag


def now() -> int:
    return time.monotonic_ns()


_LOG_LOCK = threading.Lock()


def _write(line: str) -> None:
    # one write per entry under a lock, like logrus: print() from two threads can interleave
    with _LOG_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def log(msg: str, level: str = "info") -> None:
    """A logrus text line, as k3s prints when stderr is not a terminal."""
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
    _write(f'time="{ts}" level={level} msg="{quoted}"')


def klog(msg: str, where: str) -> None:
    """A klog line, as the embedded kube-apiserver prints into k3s's log."""
    t = datetime.now()
    _write(f"I{t:%m%d %H:%M:%S.%f}    {os.getpid()} {where}] {msg}")


def http_get(port: int, path: str) -> int:
    """GET over a FRESH connection (k3s's readiness request sets req.Close: one per attempt)."""
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        return int(c.makefile("rb").readline().split()[1])


def listen_tcp(addr: str, port: int) -> tuple[socket.socket, list[int]]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    before = now()
    s.listen(64)
    return s, [before, now()]


def wrapper(args: argparse.Namespace) -> None:
    """cmd/k3s: stage the data dir, then exec k3s-server in the same pid."""
    server = str(Path(args.workdir) / "k3s-server")
    os.execv(server, [server, __file__, "server", *sys.argv[2:]])


def containerd(args: argparse.Namespace) -> None:
    """containerd: starts, listens on its socket after a while, serves until its parent dies."""
    start = now()
    parent = os.getppid()
    time.sleep(CONTAINERD_DELAY_S)
    path = Path(args.workdir) / "containerd.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    before = now()
    s.listen(16)
    listen = [before, now()]
    (Path(args.workdir) / "containerd.truth.json").write_text(
        json.dumps({"pid": os.getpid(), "start_ns": start, "listen_ns": listen}))
    s.settimeout(0.1)
    while os.getppid() == parent:  # k3s runs containerd with Pdeathsig=SIGKILL
        try:
            c, _ = s.accept()
            c.close()
        except TimeoutError:
            pass


def server(args: argparse.Namespace) -> None:
    """k3s server, v1.32.4 order (docs/k3s-startup.md §2.1)."""
    work = Path(args.workdir)
    ports: dict[str, int] = {k: int(v) for k, v in json.loads(args.ports).items()}
    interval_ns = int(args.interval * 1e9)
    truth: dict[str, Any] = {"pid": os.getpid(), "interval_ns": interval_ns, "polls": [],
                             "cert_fetches": [], "cri_attempts": []}
    api_ready = threading.Event()  # the apiserver's readyz would answer 200
    polled_ok = threading.Event()  # the shared APIServerReady channel closed
    poll_done = threading.Condition()

    log(f"Starting k3s {VERSION} ({COMMIT})")
    kine = socket.socket(socket.AF_UNIX)
    kine.bind(str(work / "kine.sock"))
    kine.listen(16)
    log("Kine available at unix://kine.sock")

    class Supervisor(http.server.BaseHTTPRequestHandler):
        """:6443: /cacerts, /v1-k3s/*, and the apiserver's handler in-process (no TCP hop)."""

        def do_GET(self) -> None:
            ready = api_ready.is_set() or not self.path.startswith("/readyz")
            body = b"ok" if ready else b"[-]poststarthook/rbac/bootstrap-roles failed"
            self.send_response(200 if ready else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    before = now()
    sup = http.server.ThreadingHTTPServer(("127.0.0.1", ports["6443"]), Supervisor)
    truth["supervisor_listen_ns"] = [before, now()]
    threading.Thread(target=sup.serve_forever, daemon=True).start()

    # agent.Run -> config.Get: certificates and config from the supervisor (irregular connects
    # from the same process to the same endpoint as the readiness poll that follows)
    for path, pause in (("/cacerts", 0.013), ("/v1-k3s/serving-kubelet.crt", 0.041),
                        ("/v1-k3s/config", 0.007)):
        t = now()
        http_get(ports["6443"], path)
        truth["cert_fetches"].append(t)
        time.sleep(pause)

    # syssetup.Configure: modprobe execs (fail here: the kernel has no modules)
    for mod in ("br_netfilter", "overlay"):
        rc = subprocess.run(["/sbin/modprobe", "--", mod], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode
        if rc:
            log(f"Failed to load kernel module {mod} with modprobe", "warning")

    # executor.Bootstrap: the shared APIServerReady poller starts now
    def poller() -> None:
        t0 = now()
        k = 0
        while True:
            t = now()
            code = http_get(ports["6443"], "/readyz?verbose")
            with poll_done:
                truth["polls"].append({"t": t, "code": code, "done": now()})
                poll_done.notify_all()
            if code == 200:
                polled_ok.set()
                return
            log('Polling for API server readiness: GET /readyz failed: an error on the server '
                '("[-]poststarthook/rbac/bootstrap-roles failed: reason withheld") has prevented '
                "the request from succeeding")
            k += 1
            time.sleep(max(0, t0 + k * interval_ns - now()) / 1e9)

    threading.Thread(target=poller, daemon=True).start()
    time.sleep(0.02)  # flannel.Prepare, containerd.SetupContainerdConfig: config files

    # executor.Containerd: exec containerd, block until its socket answers (cri.WaitForService)
    sock = work / "containerd.sock"
    log(f"Logging containerd to {work}/containerd.log")
    log(f"Running containerd -c {work}/config.toml -a {sock}")
    truth["containerd_popen_ns"] = now()
    ctrd = subprocess.Popen([str(work / "containerd"), __file__, "containerd", *sys.argv[2:]])
    failures = 0
    while True:
        t = now()
        c = socket.socket(socket.AF_UNIX)
        try:
            c.connect(str(sock))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            c.close()
            truth["cri_attempts"].append({"t": t, "ok": False})
            failures += 1
            if failures >= 2:
                log(f"Waiting for containerd startup: rpc error: code = Unavailable desc = {e}")
            time.sleep(max(0.0, CRI_INTERVAL_S - (now() - t) / 1e9))
            continue
        c.close()
        truth["cri_attempts"].append({"t": t, "ok": True})
        break
    log("containerd is now running")

    # agent.Agent: kubelet and kube-proxy goroutines block on APIServerReady
    listens: dict[str, list[int]] = {}
    held: list[socket.socket] = []

    def after_ready(name: str, delay: float, binds: list[tuple[str, str]]) -> None:
        polled_ok.wait()
        time.sleep(delay)
        for addr, port in binds:
            s, when = listen_tcp(addr, ports[port])
            held.append(s)
            listens[port] = when

    log("Running kubelet --address=0.0.0.0 --anonymous-auth=false --healthz-bind-address="
        "127.0.0.1 --node-ip=127.0.0.1")
    log("Running kube-proxy --healthz-bind-address=127.0.0.1 --hostname-override=node")
    gated = [threading.Thread(target=after_ready, args=("kubelet", 0.05,
                                                         [("0.0.0.0", "10250"),
                                                          ("127.0.0.1", "10248")]))]

    # control.Server: the apiserver (:6444), then scheduler and controller-manager
    def apiserver() -> None:
        time.sleep(0.05)
        s, when = listen_tcp("127.0.0.1", ports["6444"])
        held.append(s)
        truth["apiserver_listen_ns"] = when
        klog("Serving securely on 127.0.0.1:6444", "secure_serving.go:213")
        warm = when[1] + int(APISERVER_WARMUP_S * 1e9)
        with poll_done:  # become ready just after a failed poll: the next poll finds it
            poll_done.wait_for(lambda: any(p["t"] >= warm for p in truth["polls"]))
            after = next(p for p in truth["polls"] if p["t"] >= warm)
        time.sleep(max(0, after["done"] + int(READY_AFTER_POLL_S * 1e9) - now()) / 1e9)
        truth["apiserver_ready_ns"] = now()
        api_ready.set()
        klog("all system priority classes are created successfully or already exist.",
             "storage_scheduling.go:111")

    log("Running kube-apiserver --advertise-port=6443 --bind-address=127.0.0.1 "
        "--secure-port=6444 --token-auth-file=/var/lib/rancher/k3s/server/cred/passwd")
    threading.Thread(target=apiserver, daemon=True).start()
    log("Running kube-scheduler --authentication-kubeconfig=... --secure-port=10259")
    gated.append(threading.Thread(target=after_ready, args=("scheduler", 0.2,
                                                            [("127.0.0.1", "10259")])))
    log("Running kube-controller-manager --secure-port=10257 --use-service-account-credentials")
    gated.append(threading.Thread(target=after_ready, args=("controller-manager", 0.08,
                                                            [("127.0.0.1", "10257")])))
    for th in gated:
        th.start()

    polled_ok.wait()
    log("Kube API server is now running")
    log("k3s is up and running")
    for th in gated:
        th.join()
    truth["listen_ns"] = listens
    time.sleep(0.1)
    ctrd.terminate()
    ctrd.wait()
    truth["containerd"] = json.loads((work / "containerd.truth.json").read_text())
    Path(args.truth).write_text(json.dumps(truth, indent=1))
    sup.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["wrapper", "server", "containerd"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--ports", default="{}")
    ap.add_argument("--truth", default="/dev/null")
    args = ap.parse_args()
    {"wrapper": wrapper, "server": server, "containerd": containerd}[args.role](args)


if __name__ == "__main__":
    main()
