"""A VM whose PID 1 is systemd, for the real-boot check of `k3sprof boot` (host side).

The root file system is a Debian 12 minbase built by mmdebstrap at test time and CACHED in
/var/cache/k3sprof-vm/ under a hash of its inputs (suite, package list, mmdebstrap version):
the first run builds it (~1-2 min), later runs and both boots of one run reuse it. Per test
session an ext4 image is made from it plus:

* the kernel's OWN headers (/usr/src/linux-headers-<rel> and -common; build + source links);
* this checkout's tracer/, bpf/ and .venv at the SAME absolute path (the venv is editable
  and made by /usr/bin/python3 3.11, which the bookworm rootfs has too; BCC comes from the
  rootfs's python3-bpfcc through --system-site-packages);
* `k3sprof boot install --root IMAGE_ROOT` (what an image builder runs), a stand-in
  k3s.service and /usr/local/bin/k3s (STAND-IN, not k3s: a small real program that listens
  on 6443 and then sends READY=1, see STANDIN_K3S), and a check unit that waits for the
  boot recording to finish, saves what systemd and journald say, and powers off;
* a socket-activated stand-in datastore (k3sprof-sockd.socket on 127.0.0.1:6444 and its
  service, SOCKD) that the stand-in k3s polls every 250 ms before it listens: systemd
  listens, the daemon it starts on the first connection accepts (issue 29's shape 1); the
  first connect waits in the backlog while the daemon starts (seconds under TCG).
  test_systemd_boot asserts the wait names the daemon and carries its states. Why 250 ms
  and not k3s's 100 ms: under TCG with the matrix's other VMs running, the guest's timers
  fire up to ~70 ms late (a fresh-clone CI run of 2026-12-07 14:46 UTC: a 100 ms retry
  sleep that lasted 149 ms), beyond the half interval within which the analysis takes a
  late attempt into a poll series; at 250 ms the same stall is within it. The daemon's job
  is 800 ms of CPU, so the poll has several retries during it.

After each boot the host copies /var/lib/k3sprof (the runs) and /var/lib/k3sprof-check out of
the image with debugfs (no loop mount, no running VM needed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kernels import vm

CACHE = Path(os.environ.get("K3SPROF_VM_CACHE", "/var/cache/k3sprof-vm"))
SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "udev", "kmod", "iproute2", "procps", "python3",
            "python3-bpfcc")
IMAGE_SIZE = "3G"
BOOT_TIMEOUT_S = 900
#: what boot install is given: stop at the stand-in's ready line (a journal line)
END = "log:k3s is up and running"
#: venv parts the recorder never imports (linters, test tools): not copied into the image
VENV_EXCLUDES = ("mypy", "mypy-*", "*__mypyc*", "ruff", "ruff-*", "pip", "pip-*",
                 "hypothesis", "hypothesis-*", "_pytest", "pytest", "pytest-*", "virtme",
                 "virtme_ng*", "mypyc")

STANDIN_K3S = '''\
#!/usr/bin/python3
"""STAND-IN for k3s in the k3sprof systemd VM test: NOT k3s (no k3s binary can be installed
here). It behaves like k3s towards systemd: Type=notify, listens on 6443, then READY=1, and
logs k3s's own milestone lines. Each line carries the program's CLOCK_MONOTONIC ns, the
independent witness for the trace clock."""
import os
import socket
import time


def log(msg):
    print(f"{msg} monotonic_ns={time.monotonic_ns()}", flush=True)


log("Starting k3s v0.0.0-standin (not k3s)")


def datastore_ready():
    """One readiness check of the socket-activated stand-in datastore on 6444 (k3sprof-sockd):
    a fresh connection, the first line of its answer."""
    try:
        with socket.create_connection(("127.0.0.1", 6444), timeout=30) as c:
            return c.recv(16).startswith(b"ready")
    except OSError:
        return False


# poll it every 250 ms from the first attempt: a ticker that drops the ticks a slow attempt
# missed (Go's time.Ticker, under k3s's readiness loops), not a burst that catches up. k3s's
# loops tick every 100 ms; 250 ms because this guest is emulated (TCG), whose timers can fire
# ~70 ms late under load (systemd_vm.py's docstring)
t0 = time.monotonic()
attempts = 1
while not datastore_ready():
    attempts += 1
    now = time.monotonic()
    time.sleep(0.25 - (now - t0) % 0.25)
log(f"datastore 127.0.0.1:6444 ready after {attempts} attempts")
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 6443))
srv.listen(64)
log("Kube API server is now running on :6443")
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\\0" + addr[1:]
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n.connect(addr)
n.send(b"READY=1")
n.close()
log("k3s is up and running")
while True:
    c, _ = srv.accept()
    c.close()
'''

SOCKD = '''\
#!/usr/bin/python3
"""STAND-IN datastore for the k3sprof systemd VM test (not kine, not etcd): started by systemd
socket activation (k3sprof-sockd.socket listens on 127.0.0.1:6444; this service gets the
socket as fd 3, LISTEN_PID/LISTEN_FDS, and accepts on it: the listener, systemd, is not the
acceptor). Its job before it is ready: 800 ms of CPU on its main thread; meanwhile another
thread answers every connection "not ready", then "ready". Its truth (pid, the job's thread
CPU, the process's CPU at the job's end, CLOCK_MONOTONIC ns) goes to
/var/lib/k3sprof-check/<boot id>/sockd.json for the host."""
import json
import os
import socket
import threading
import time

assert int(os.environ["LISTEN_PID"]) == os.getpid() and int(os.environ["LISTEN_FDS"]) == 1
srv = socket.socket(fileno=3)
done = threading.Event()


def serve():
    while True:
        c, _ = srv.accept()
        with c:
            c.sendall(b"ready\\n" if done.is_set() else b"not ready\\n")


threading.Thread(target=serve, daemon=True).start()
t0, c0 = time.monotonic_ns(), time.thread_time_ns()
while time.thread_time_ns() - c0 < 800_000_000:
    pass
c1, t1 = time.thread_time_ns(), time.monotonic_ns()
truth = {"pid": os.getpid(), "t0": t0, "t1": t1, "cpu_ns": c1 - c0,
         "proc_cpu_ns": time.process_time_ns()}
boot = open("/proc/sys/kernel/random/boot_id").read().strip().replace("-", "")
out = f"/var/lib/k3sprof-check/{boot}"
os.makedirs(out, exist_ok=True)
with open(f"{out}/sockd.json", "w") as f:
    json.dump(truth, f)
done.set()
threading.Event().wait()
'''

SOCKD_SOCKET = """\
[Unit]
Description=STAND-IN datastore socket for the k3sprof VM test (socket activation)

[Socket]
ListenStream=127.0.0.1:6444
Accept=no

[Install]
WantedBy=sockets.target
"""

SOCKD_SERVICE = """\
[Unit]
Description=STAND-IN datastore for the k3sprof VM test (socket-activated; not kine/etcd)

[Service]
ExecStart=/usr/local/bin/k3sprof-sockd
"""

# k3s's own unit as its installer writes it, minus what needs the real binary
STANDIN_UNIT = """\
[Unit]
Description=Lightweight Kubernetes (STAND-IN for the k3sprof VM test: not k3s)
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
KillMode=process
Delegate=yes
LimitNOFILE=1048576
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=/usr/local/bin/k3s server

[Install]
WantedBy=multi-user.target
"""

CHECK_SCRIPT = """\
#!/bin/sh
# Wait until the boot recording is over (boot run's main process exited), then save what
# systemd and journald say about this boot for the host, and power off.
boot=$(tr -d - < /proc/sys/kernel/random/boot_id)
out=/var/lib/k3sprof-check/$boot
mkdir -p "$out"
i=0
while [ $i -lt 600 ]; do
  st=$(systemctl show -p ActiveState --value k3sprof-boot.service)
  case "$st" in active|activating|deactivating) sleep 1; i=$((i+1));; *) break;; esac
done
echo "$i" > "$out/waited_s"
for u in k3s.service k3sprof-boot.service network-online.target; do
  systemctl show "$u" > "$out/$u.show"
done
for u in $(systemctl show -p After --value k3s.service); do
  systemctl show -p Id,ActiveState,ActiveEnterTimestampMonotonic "$u"; echo
done > "$out/k3s-after.show"
journalctl -b -o json -u k3s.service > "$out/k3s.journal.json"
journalctl -b -u k3sprof-boot.service > "$out/k3sprof-boot.log" 2>&1
ls -1 /var/lib/k3sprof > "$out/runs.txt"
cat /proc/uptime > "$out/uptime"
sync
systemctl poweroff
"""

CHECK_UNIT = """\
[Unit]
Description=k3sprof VM test: collect the boot's facts and power off
After=k3s.service k3sprof-boot.service multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/k3sprof-vmcheck

[Install]
WantedBy=multi-user.target
"""


def _run(cmd: list[str], **kw: object) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")


def rootfs_tar() -> Path:
    """The cached mmdebstrap tarball (built once per set of inputs)."""
    ver = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True,
                         check=True).stdout.strip()
    key = hashlib.sha256(f"{SUITE}|{','.join(PACKAGES)}|{ver}".encode()).hexdigest()[:16]
    tar = CACHE / f"rootfs-{SUITE}-{key}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = tar.with_suffix(".tmp.tar")
    _run(["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
          str(tmp)], timeout=1200)
    tmp.rename(tar)
    return tar


def _copy(src: Path, root: Path, excludes: tuple[str, ...] = ()) -> None:
    """Copy src (absolute) to the same path under root, keeping links and modes."""
    dest = root / src.relative_to("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["tar", "-C", str(src.parent), "-cf", "-"]
    cmd += [f"--exclude={e}" for e in excludes] + [src.name]
    pack = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-C", str(dest.parent), "-xpf", "-"], stdin=pack.stdout, check=True)
    if pack.wait() != 0:
        raise RuntimeError(f"copying {src} failed")


def build_image(kernel: vm.Kernel, work: Path) -> Path:
    """An ext4 image: cached rootfs + headers + this checkout + boot install + units."""
    root = work / "root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(rootfs_tar())])
    rel = kernel.release
    _copy(kernel.headers, root)
    common = Path(str(kernel.headers).removesuffix("-amd64") + "-common")
    if common.is_dir():
        _copy(common, root)
    moddir = root / "lib" / "modules" / rel
    moddir.mkdir(parents=True, exist_ok=True)
    for f in Path("/lib/modules", rel).glob("modules.*"):
        shutil.copy2(f, moddir / f.name)
    for link in ("build", "source"):  # as the headers package made them (BCC needs both)
        host = Path("/lib/modules", rel, link)
        if host.is_symlink():
            (moddir / link).symlink_to(os.readlink(host))
    for part in ("tracer", "bpf", "pyproject.toml"):
        _copy(vm.ROOT / part, root, ("__pycache__",))
    _copy(vm.ROOT / ".venv", root, VENV_EXCLUDES)
    # the stand-in k3s, its unit (enabled), the check unit (enabled)
    k3s = root / "usr/local/bin/k3s"
    k3s.parent.mkdir(parents=True, exist_ok=True)
    k3s.write_text(STANDIN_K3S)
    k3s.chmod(0o755)
    sockd = root / "usr/local/bin/k3sprof-sockd"
    sockd.write_text(SOCKD)
    sockd.chmod(0o755)
    chk = root / "usr/local/sbin/k3sprof-vmcheck"
    chk.parent.mkdir(parents=True, exist_ok=True)
    chk.write_text(CHECK_SCRIPT)
    chk.chmod(0o755)
    units = root / "etc/systemd/system"
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for name, text in (("k3s.service", STANDIN_UNIT), ("k3sprof-vmcheck.service", CHECK_UNIT)):
        (units / name).write_text(text)
        (wants / name).symlink_to(f"/etc/systemd/system/{name}")
    (units / "k3sprof-sockd.service").write_text(SOCKD_SERVICE)
    (units / "k3sprof-sockd.socket").write_text(SOCKD_SOCKET)
    sockets = units / "sockets.target.wants"
    sockets.mkdir(parents=True, exist_ok=True)
    (sockets / "k3sprof-sockd.socket").symlink_to("/etc/systemd/system/k3sprof-sockd.socket")
    (root / "etc/hostname").write_text("k3sprof-vm\n")
    # the checkout may live under /tmp (a fresh clone): Debian's tmpfiles empty /tmp at boot
    # ("D /tmp") and tmp.mount would hide it, so neither happens in this image
    tmpfiles = root / "etc/tmpfiles.d"
    tmpfiles.mkdir(parents=True, exist_ok=True)
    (tmpfiles / "tmp.conf").symlink_to("/dev/null")
    (units / "tmp.mount").symlink_to("/dev/null")
    # the serial console must not wait for a login: nobody types there
    getty = units / "serial-getty@ttyS0.service"
    getty.symlink_to("/dev/null")
    # `k3sprof boot install`, as an image builder would run it, into the image's root
    _run([str(vm.ROOT / ".venv/bin/k3sprof"), "boot", "install", "--root", str(root),
          "--end", END, "--timeout", "600", "--keep", "1", "--attach-timeout", "600"],
         cwd=vm.ROOT)
    img = work / "rootfs.img"
    img.unlink(missing_ok=True)
    _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(img), IMAGE_SIZE],
         timeout=900)
    shutil.rmtree(root)
    return img


def boot(kernel: vm.Kernel, img: Path, log: Path) -> tuple[int | None, float]:
    """Boot the image with systemd as PID 1 until the check unit powers it off."""
    mode, _ = vm.accel()
    accel = ["-accel", "kvm", "-cpu", "host"] if mode == "kvm" else \
        ["-accel", "tcg,thread=multi", "-cpu", "max"]
    assert kernel.initrd is not None, f"{kernel.release} has no initrd"
    cmd = ["qemu-system-x86_64", *accel, "-m", "2G", "-smp", "1", "-nographic", "-no-reboot",
           "-kernel", str(kernel.image), "-initrd", str(kernel.initrd),
           "-drive", f"file={img},format=raw,if=virtio",
           "-append", "console=ttyS0 root=/dev/vda rw panic=-1 systemd.show_status=error"]
    t0 = time.monotonic()
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            rc: int | None = p.wait(timeout=BOOT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            rc = None
    return rc, time.monotonic() - t0


def copy_out(img: Path, path: str, dest: Path) -> None:
    """Copy a directory out of the (unmounted) ext4 image."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["debugfs", "-R", f"rdump {path} {dest}", str(img)])


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show` output -> {property: value}."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class Boot:
    n: int
    rc: int | None
    seconds: float
    console: Path
    runs: Path  # copy of /var/lib/k3sprof after this boot
    check: Path  # copy of /var/lib/k3sprof-check/<boot id>/
    boot_id: str = ""

    def show(self, unit: str) -> dict[str, str]:
        return parse_show((self.check / f"{unit}.show").read_text())

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs.iterdir() if p.is_dir())

    def this_run(self) -> Path:
        mine = [p for p in self.run_dirs() if p.name.endswith(self.boot_id)]
        assert len(mine) == 1, f"runs after boot {self.n}: {[p.name for p in self.run_dirs()]}"
        return mine[0]


@dataclass
class SystemdVM:
    boots: list[Boot] = field(default_factory=list)
    image_s: float = 0.0


def two_boots(out: Path) -> SystemdVM:
    """Build the image (cached rootfs), boot it twice, copy out runs and facts after each."""
    kernel = next((k for k in vm.matrix()[0] if k.series == vm.SERIES[0]), None)
    if kernel is None:
        raise RuntimeError(f"no Debian {vm.SERIES[0]} kernel with its own headers (make setup)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    work = CACHE / f"work-{os.getpid()}"
    try:
        img = build_image(kernel, work)
        res = SystemdVM(image_s=time.monotonic() - t0)
        seen: set[str] = set()
        for n in (1, 2):
            console = out / f"console-boot{n}.log"
            rc, secs = boot(kernel, img, console)
            dest = out / f"boot{n}"
            copy_out(img, "/var/lib/k3sprof", dest)
            copy_out(img, "/var/lib/k3sprof-check", dest)
            new = [p for p in (dest / "k3sprof-check").iterdir() if p.name not in seen] \
                if (dest / "k3sprof-check").is_dir() else []
            b = Boot(n, rc, secs, console, dest / "k3sprof", new[0] if new else dest / "none")
            if new:
                b.boot_id = new[0].name
                seen.add(new[0].name)
            res.boots.append(b)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)
