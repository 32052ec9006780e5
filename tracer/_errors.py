"""The one exception hierarchy. Library code raises these; only the CLI prints and exits."""

from __future__ import annotations


class TracerError(Exception):
    """Base of every error k3sprof reports to a user (one line, says how to fix it)."""

    exit_code = 1


class TraceError(TracerError):
    """A trace cannot be read: missing, corrupt, truncated, foreign or too new."""

    exit_code = 3


class UsageError(TracerError):
    """A user-supplied value is wrong (bad condition, existing output without --force, ...)."""

    exit_code = 2


class PrivilegeError(TracerError):
    """Recording needs root / BPF capabilities."""

    exit_code = 4


class ProbeError(TracerError):
    """The kernel cannot run the probes (no tracefs, no headers, compile/attach failed)."""

    exit_code = 5
