"""Remove secrets from command lines and text before they go into shareable output.

k3s command lines carry the cluster join token (``--token``, ``-t``, ``K3S_TOKEN=``), datastore
passwords inside ``--datastore-endpoint`` URLs, S3 keys and VPN join keys. A report is pasted into
public issues, so everything that leaves the trace (report, compare, export, analyze output) goes
through :func:`redact_argv` / :func:`redact_text` unless the user asks for ``--no-redact``.

Only the secret is replaced (by ``<redacted>``): flag names, users, hosts and file paths stay,
since they are what makes a profile readable. ``--token-file PATH`` keeps PATH (the file's
contents are the secret, and nothing here ever reads them). When unsure, redact more, not less.
"""

from __future__ import annotations

import os
import re

REDACTED = "<redacted>"

# Words that make a flag or variable name secret (matched on the lower-cased name with "_" -> "-").
_SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "secret",
    "vpn-auth",  # k3s --vpn-auth="name=tailscale,joinKey=..."
    "joinkey",
    "access-key",
    "private-key",
    "credentials",
)
# A name ending like this holds a reference to the secret (a path), not the secret itself.
_REFERENCE_SUFFIXES = ("-file", "-path", "-dir", "-ttl")
# Flags that contain a secret word but take no value (k3s booleans).
_BOOLEAN_FLAGS = frozenset({"secrets-encryption", "enable-bootstrap-token-auth"})
# Programs whose -t is the k3s short form of --token (elsewhere -t means other things:
# `iptables -t nat` is in every k3s start and must stay readable).
_K3S_PROGRAMS = ("k3s", "k3s-server", "k3s-agent")

_FLAG = re.compile(r"^(-{1,2})([A-Za-z0-9][\w.\-]*)$")
_FLAG_WITH_VALUE = re.compile(r"^(-{1,2}[A-Za-z0-9][\w.\-]*)=(.*)$", re.DOTALL)
_ENV_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)

# scheme://user:PASSWORD@host: the password runs to the last "@" of the whitespace-delimited word
# (passwords may contain "@"; redacting a bit of host is better than leaking a bit of password).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s]*@(?=[^\s@]*(?:\s|$))")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_BASIC_AUTH = re.compile(r"(?i)\b(authorization:\s*basic\s+)[^\s\"',;]+")
# k3s secure token: K10<sha256 of the cluster CA>::<user>:<password>. The CA hash is public.
_NODE_TOKEN = re.compile(r"\b(K10[0-9a-fA-F]*::[^\s:]+:)[^\s\"',;]+")
_QUOTED_OR_WORD = r"(?:\"[^\"]*\"|'[^']*'|[^\s\"']+)"
# name=value and "name: value" (YAML, logs) where name says secret
_KEY_VALUE = re.compile(r"([\w.\-]*[A-Za-z][\w.\-]*)(=|:[ \t]*)(" + _QUOTED_OR_WORD + ")")
# "--token VALUE" inside free text such as `sh -c "k3s server --token abc"`
_FLAG_SPACE_VALUE = re.compile(
    r"(?<![\w\-])(--?[A-Za-z0-9][\w.\-]*)([ \t]+)(?!-)(" + _QUOTED_OR_WORD + ")"
)


# Every rule below needs one of these (lower-cased, "_" as "-") in the text: a text without any
# is returned as is, which keeps redacting a 100k-event trace cheap.
_TRIGGERS = (*_SECRET_WORDS, "://", "bearer", "basic", "k10")


def _may_hold_secret(s: str) -> bool:
    low = s.lower().replace("_", "-")
    return any(t in low for t in _TRIGGERS)


def is_secret_name(name: str) -> bool:
    """True if a flag or variable called `name` (dashes allowed) holds a secret value."""
    n = name.lstrip("-").lower().replace("_", "-")
    if n in _BOOLEAN_FLAGS or n.endswith(_REFERENCE_SUFFIXES):
        return False
    return any(w in n for w in _SECRET_WORDS)


def _redact_key_value(m: re.Match[str]) -> str:
    name, sep, value = m.group(1), m.group(2), m.group(3)
    if not is_secret_name(name) or value == REDACTED:
        return m.group(0)
    return f"{name}{sep}{REDACTED}"


def _redact_flag_space_value(m: re.Match[str]) -> str:
    flag, space, value = m.group(1), m.group(2), m.group(3)
    if not is_secret_name(flag) or value == REDACTED:
        return m.group(0)
    return f"{flag}{space}{REDACTED}"


def redact_text(s: str) -> str:
    """Replace secrets in free text (a log line, a shell command string, one argv word)."""
    if not s or not _may_hold_secret(s):
        return s
    s = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", s)
    s = _BEARER.sub(lambda m: m.group(1) + REDACTED, s)
    s = _BASIC_AUTH.sub(lambda m: m.group(1) + REDACTED, s)
    s = _NODE_TOKEN.sub(lambda m: m.group(1) + REDACTED, s)
    s = _KEY_VALUE.sub(_redact_key_value, s)
    return _FLAG_SPACE_VALUE.sub(_redact_flag_space_value, s)


def _is_k3s(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) in _K3S_PROGRAMS


def redact_argv(argv: list[str]) -> list[str]:
    """A copy of argv with every secret value replaced by ``<redacted>``."""
    k3s = _is_k3s(argv)
    if not (k3s and "-t" in argv) and not _may_hold_secret("\0".join(argv)):
        return list(argv)
    out: list[str] = []
    value_is_secret = False  # the previous word was a secret flag taking its value separately
    for i, arg in enumerate(argv):
        if value_is_secret:
            value_is_secret = False
            # a flag where a value should be means the secret flag was a boolean here
            if not arg.startswith("-"):
                out.append(REDACTED)
                continue
        if i == 0:
            out.append(redact_text(arg))
            continue
        m = _FLAG_WITH_VALUE.match(arg)
        if m:
            flag, value = m.group(1), m.group(2)
            out.append(
                f"{flag}={REDACTED}" if is_secret_name(flag) else f"{flag}={redact_text(value)}"
            )
            continue
        m = _FLAG.match(arg)
        if m:
            value_is_secret = is_secret_name(arg) or (k3s and arg == "-t")
            out.append(arg)
            continue
        m = _ENV_ASSIGNMENT.match(arg)
        if m and is_secret_name(m.group(1)):
            out.append(f"{m.group(1)}={REDACTED}")
            continue
        out.append(redact_text(arg))
    return out
