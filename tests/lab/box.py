"""The lab's local Vagrant box for vagrant-libvirt, built here from Debian packages (host side).

No box from the internet can be used here (and the guest has no internet at all), so
`make lab-test` builds one: a Debian 12 root file system made by mmdebstrap with

* systemd as init, Debian's kernel WITH its modules (br_netfilter, overlay, bridge load for
  real) and that kernel's own headers, python3-bpfcc: what `k3sprof doctor` / record need;
* what Vagrant needs of a box: a `vagrant` user with passwordless sudo and Vagrant's public
  insecure key (Vagrant swaps in a key of its own on the first `vagrant up`), sshd, DHCP on
  the first NIC (systemd-networkd), rsync for the synced folder, dbus for hostnamectl;
* what the lab's provision.sh needs offline: python3-venv/pip, curl, containerd (the stand-in
  k3s's child), openssl (its certificates), and a wheelhouse of k3sprof's Python dependencies
  built on the host, with /etc/pip.conf making pip in the guest use only it (no index);
* provision.sh's venv (/opt/k3sprof/.venv) with all of those dependencies already installed
  and byte-compiled, so provisioning installs k3sprof alone (no dependency resolution).

The disk is an ext4 file system without a partition table or boot loader (no loop device, no
grub install needed); the box's own Vagrantfile boots it libvirt's way for a kernel outside the
disk image: `kernel`/`initrd`/`cmd_line`, files shipped inside the box (vmlinuz, initrd.img,
taken from the rootfs's /boot). A reboot in the guest (`systemctl reboot`) boots the same
kernel again, as a boot loader would.

Cached in /var/cache/k3sprof-lab/ under a hash of every input (suite, packages, kernel
release, mmdebstrap version, this file, pyproject.toml): the first build takes a few minutes,
later runs reuse the .box file and `vagrant box add` it only when the added one differs.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tests.kernels import vm

CACHE = Path(os.environ.get("K3SPROF_LAB_CACHE", "/var/cache/k3sprof-lab"))
#: the name `vagrant box add` gives it; BOX=<this> in the Vagrantfiles
BOX_NAME = "k3sprof-lab/debian12"
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "udev", "dbus", "kmod", "iproute2", "procps", "openssh-server",
    "sudo", "rsync", "curl", "ca-certificates", "openssl", "python3", "python3-bpfcc",
    "python3-venv", "python3-pip", "initramfs-tools", "containerd", "runc", "iptables",
)
DISK_SIZE = "8G"  # sparse; the root file system grows into it
#: what the embedded Vagrantfile passes to the kernel (ttyS0: libvirt's serial console log)
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.show_status=error"

BOX_VAGRANTFILE = """\
# Embedded in the k3sprof lab box (tests/lab/box.py): the disk holds an ext4 file system and
# no boot loader, so libvirt boots the kernel shipped next to this file (direct kernel boot).
Vagrant.configure("2") do |config|
  config.vm.provider "libvirt" do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.cmd_line = "%s"
  end
end
"""

NETWORK = """\
[Match]
Name=eth0

[Network]
DHCP=ipv4
"""


def _run(cmd: list[str], **kw: object) -> None:
    print(f"[box] $ {' '.join(cmd)[:200]}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)[:300]} exited {p.returncode}: "
                           f"{(p.stderr or p.stdout)[-3000:]}")


def kernel_release() -> str:
    """The Debian 6.1 kernel release installed on the host (the mirror carries it)."""
    ks = [k for k in vm.matrix()[0] if k.series == vm.SERIES[0]]
    if not ks:
        raise RuntimeError(f"no Debian {vm.SERIES[0]} kernel installed: run `sudo make setup`")
    return ks[0].release


def packages(rel: str) -> tuple[str, ...]:
    return (*BASE_PACKAGES, f"linux-image-{rel}", f"linux-headers-{rel}")


def vagrant_pubkey() -> str:
    """Vagrant's public insecure key, as Debian's vagrant package ships it."""
    out = subprocess.run(["gem", "contents", "vagrant"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.endswith("/keys/vagrant.pub"):
            return Path(line).read_text()
    for p in Path("/usr/share").glob("rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"):
        return p.read_text()
    raise RuntimeError("Vagrant's insecure public key (keys/vagrant.pub) not found: "
                       "is Debian's vagrant installed? (make lab-test runs scripts/lab-setup.sh)")


def key() -> str:
    rel = kernel_release()
    mm = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True,
                        check=True).stdout.strip()
    h = hashlib.sha256()
    # what goes into the image: packages, the code that customizes it, the wheelhouse's inputs
    for part in (SUITE, ",".join(MIRRORS), ",".join(packages(rel)), mm, CMDLINE, DISK_SIZE,
                 BOX_VAGRANTFILE, NETWORK, inspect.getsource(_customize),
                 inspect.getsource(_wheelhouse), inspect.getsource(_bake_venv), GUEST_VENV,
                 inspect.getsource(build),
                 (vm.ROOT / "pyproject.toml").read_text()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def _wheelhouse(dest: Path) -> None:
    """k3sprof's Python dependencies (and the build backend) as wheels, built on the host."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = [str(vm.ROOT / ".venv/bin/python"), "-m", "pip"]
    _run([*pip, "wheel", "-q", "--disable-pip-version-check", "-w", str(dest),
          str(vm.ROOT), "setuptools>=64", "wheel"], timeout=1200)
    for w in dest.glob("k3sprof-*.whl"):  # the guest installs k3sprof from the synced repo
        w.unlink()


#: where provision.sh makes k3sprof's venv (its PREFIX/.venv); the box brings it with every
#: dependency installed, so provision.sh installs k3sprof alone (vagrant/lib.sh
#: lab_pip_install_k3sprof): under TCG, unpacking pyarrow, numpy and plotly in the guest took
#: most of the 150 s that provisioning's pip install took
GUEST_VENV = "/opt/k3sprof/.venv"


def _bake_venv(root: Path) -> None:
    """Make provision.sh's venv in the rootfs (chroot: the guest's own Python 3.11, the same
    --system-site-packages for python3-bpfcc) and install the whole wheelhouse into it:
    k3sprof's dependencies plus setuptools and wheel, so the guest builds k3sprof's own wheel
    without an isolated build env. Byte-compiled here, natively, not in the guest under TCG."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    _run(["chroot", str(root), "python3", "-m", "venv", "--system-site-packages", GUEST_VENV],
         env=env, timeout=600)
    wheels = sorted(f"/var/cache/k3sprof-wheels/{w.name}"
                    for w in (root / "var/cache/k3sprof-wheels").glob("*.whl"))
    # the rootfs's /etc/pip.conf applies: no index, the wheelhouse only (--compile overrides
    # its no-compile, which is there for installs inside the slow guest)
    _run(["chroot", str(root), f"{GUEST_VENV}/bin/pip", "install", "-q",
          "--disable-pip-version-check", "--compile", *wheels], env=env, timeout=1200)


def _customize(root: Path) -> None:
    """Make the rootfs a Vagrant box: user, sudo, ssh key, network, fstab, offline pip."""
    _run(["chroot", str(root), "useradd", "-m", "-s", "/bin/bash", "-U", "vagrant"])
    sudoers = root / "etc/sudoers.d/vagrant"
    sudoers.write_text("vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n")
    sudoers.chmod(0o440)
    ssh = root / "home/vagrant/.ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(vagrant_pubkey())
    (ssh / "authorized_keys").chmod(0o600)
    _run(["chroot", str(root), "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"])
    # sshd: no reverse DNS lookups (nothing to ask in the lab's isolated network)
    (root / "etc/ssh/sshd_config.d/k3sprof-lab.conf").write_text("UseDNS no\n")
    (root / "etc/systemd/network/10-eth0.network").write_text(NETWORK)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("systemd-networkd.service", "ssh.service"):
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"/lib/systemd/system/{unit}")
    # network-online.target (k3s.service waits for it) means "eth0 has its lease"
    nw = root / "etc/systemd/system/network-online.target.wants"
    nw.mkdir(parents=True, exist_ok=True)
    link = nw / "systemd-networkd-wait-online.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/systemd-networkd-wait-online.service")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc/hostname").write_text("k3sprof-lab\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 k3sprof-lab\n")
    (root / "etc/pip.conf").write_text(
        "# k3sprof lab box: no internet in the guest; pip installs from this wheelhouse only\n"
        "[global]\nno-index = true\nfind-links = /var/cache/k3sprof-wheels\n"
        # no .pyc for all of plotly & co. at install: slow under TCG; imports compile lazily
        "no-compile = true\n")
    _wheelhouse(root / "var/cache/k3sprof-wheels")
    _bake_venv(root)
    # containerd is the stand-in k3s's child, not a service of its own (as with k3s)
    for unit in ("containerd.service",):
        link = wants / unit
        if link.is_symlink():
            link.unlink()
    (root / "etc/machine-id").write_text("")  # a fresh id per VM (systemd makes one at boot)


def rootfs_tar(rel: str) -> Path:
    """The mmdebstrap tarball of the box's packages (cached apart: the slow part, ~2-3 min)."""
    mm = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True,
                        check=True).stdout.strip()
    k = hashlib.sha256("|".join((SUITE, *MIRRORS, *packages(rel), mm)).encode()).hexdigest()
    tar = CACHE / f"rootfs-{k[:16]}.tar"
    if tar.exists():
        return tar
    for old in CACHE.glob("rootfs-*.tar"):
        old.unlink()
    t0 = time.monotonic()
    tmp = tar.with_suffix(".tmp.tar")
    _run(["mmdebstrap", "--variant=minbase", f"--include={','.join(packages(rel))}",
          SUITE, str(tmp), *MIRRORS], timeout=3600)
    tmp.rename(tar)
    print(f"[box] mmdebstrap: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return tar


def build(out: Path) -> Path:
    """Build the box file `out` (tar of box.img, metadata.json, Vagrantfile, kernel, initrd)."""
    rel = kernel_release()
    work = out.parent / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        root = work / "root"
        t0 = time.monotonic()
        root.mkdir()
        _run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(rootfs_tar(rel))])
        _customize(root)
        boot = root / "boot"
        shutil.copy2(boot / f"vmlinuz-{rel}", work / "vmlinuz")
        shutil.copy2(boot / f"initrd.img-{rel}", work / "initrd.img")
        (work / "vmlinuz").chmod(0o644)
        (work / "initrd.img").chmod(0o644)
        raw = work / "disk.raw"
        _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw), DISK_SIZE],
             timeout=1800)
        shutil.rmtree(root)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "box.img")],
             timeout=1800)
        raw.unlink()
        (work / "metadata.json").write_text(json.dumps(
            {"provider": "libvirt", "format": "qcow2", "virtual_size": int(DISK_SIZE[:-1])}))
        (work / "Vagrantfile").write_text(BOX_VAGRANTFILE % CMDLINE)
        (work / "info.json").write_text(json.dumps(
            {"built_by": "k3sprof tests/lab/box.py", "kernel": rel, "suite": SUITE}))
        tmp = out.with_suffix(".tmp")
        with tarfile.open(tmp, "w") as tar:
            for name in ("metadata.json", "Vagrantfile", "info.json", "vmlinuz", "initrd.img",
                         "box.img"):
                tar.add(work / name, arcname=name)
        tmp.rename(out)
        print(f"[box] built {out} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def drop_pool_volumes(env: dict[str, str]) -> None:
    """vagrant-libvirt uploads a box into libvirt's `default` pool once per added box: drop the
    copies of earlier builds (libvirtd must run: labns.sh start)."""
    labns = [str(vm.ROOT / "tests/lab/labns.sh"), "exec", "virsh", "-c", "qemu:///system"]
    out = subprocess.run([*labns, "vol-list", "default"], capture_output=True, text=True,
                         env=env)
    prefix = BOX_NAME.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
    for line in out.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix):
            _run([*labns, "vol-delete", name, "default"], env=env)


def ensure(env: dict[str, str]) -> str:
    """The cached box file (built when its inputs changed), added to Vagrant (VAGRANT_HOME in
    `env`) as BOX_NAME unless that is already this build. Returns BOX_NAME."""
    CACHE.mkdir(parents=True, exist_ok=True)
    k = key()
    boxfile = CACHE / f"box-{k}.box"
    if not boxfile.exists():
        for old in CACHE.glob("box-*.box"):  # one box per machine is enough
            old.unlink()
        build(boxfile)
    home = Path(env["VAGRANT_HOME"])
    stamp = home / "k3sprof-lab-box.key"
    if not (stamp.exists() and stamp.read_text() == k):
        _run(["vagrant", "box", "add", "--force", "--name", BOX_NAME, str(boxfile)], env=env,
             timeout=1800)
        drop_pool_volumes(env)
        stamp.write_text(k)
    return BOX_NAME


if __name__ == "__main__":
    env = dict(os.environ)
    env.setdefault("VAGRANT_HOME", str(CACHE / "vagrant-home"))
    print(ensure(env))
