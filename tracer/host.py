"""The two things k3sprof asks of the host it runs on, written once: the kernel's boot id and
systemd's notify socket (sd_notify). Standard library only: the demo supervisor, a recorded
workload, imports it too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id(form: Literal["uuid", "journal"] = "uuid") -> str:
    """This boot's id from the kernel, or "" when unreadable.

    ``uuid``: the kernel's own text (``951f66bf-0610-4d15-8c17-bd90ec31a690``), what trace
    metadata stores. ``journal``: 32 lower-case hex digits, what journald writes in ``_BOOT_ID``
    and ``journalctl --list-boots`` shows (``journalctl -b ID`` finds the boot).
    """
    try:
        text = BOOT_ID_FILE.read_text().strip().lower()
    except OSError:
        return ""
    return text.replace("-", "") if form == "journal" else text


def journal_boot_id(text: str) -> str:
    """Any boot id text (either form, any case) in the journal form, for comparisons."""
    return text.strip().replace("-", "").lower()


def send_notify(address: str, message: str | bytes) -> None:
    """One sd_notify(3) datagram to ``address`` ('@' = abstract namespace); OSError on failure."""
    if address.startswith("@"):
        address = "\0" + address[1:]
    data = message.encode() if isinstance(message, str) else message
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(address)
        s.sendall(data)


def sd_notify(message: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd (a Type=notify unit's manager) our state via $NOTIFY_SOCKET.

    False, never an exception, when not run by systemd or when the send fails: notifying is a
    courtesy; the manager times the unit out if READY=1 never arrives.
    """
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    try:
        send_notify(address, message)
    except OSError:
        return False
    return True
