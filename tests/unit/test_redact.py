"""Redaction on the argv shapes k3s, its installer and its helpers really use."""

from __future__ import annotations

import pytest

from tracer.redact import REDACTED, is_secret_name, redact_argv, redact_text

NODE_TOKEN = (
    "K10a3f5e8c2b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2::server:s3cr3tpass"
)


@pytest.mark.parametrize(
    ("argv", "expected", "secrets"),
    [
        (
            [
                "k3s",
                "server",
                "--token=K10abc::server:s3cr3t",
                "--datastore-endpoint=postgres://k3s:hunter2@db:5432/k3s",
            ],
            [
                "k3s",
                "server",
                "--token=<redacted>",
                "--datastore-endpoint=postgres://k3s:<redacted>@db:5432/k3s",
            ],
            ["s3cr3t", "hunter2"],
        ),
        (
            [
                "/usr/local/bin/k3s",
                "server",
                "--token",
                NODE_TOKEN,
                "--write-kubeconfig-mode",
                "644",
            ],
            ["/usr/local/bin/k3s", "server", "--token", REDACTED, "--write-kubeconfig-mode", "644"],
            ["s3cr3tpass"],
        ),
        (
            ["k3s", "agent", "-t", "shorttoken123", "--server", "https://10.0.0.1:6443"],
            ["k3s", "agent", "-t", REDACTED, "--server", "https://10.0.0.1:6443"],
            ["shorttoken123"],
        ),
        (
            ["k3s", "server", "--agent-token", "agentsecret9", "--token-file", "/etc/k3s/token"],
            ["k3s", "server", "--agent-token", REDACTED, "--token-file", "/etc/k3s/token"],
            ["agentsecret9"],
        ),
        (
            ["k3s", "server", "--agent-token-file=/var/lib/k3s/agent-token"],
            ["k3s", "server", "--agent-token-file=/var/lib/k3s/agent-token"],
            [],
        ),
        (
            [
                "k3s",
                "server",
                "--datastore-endpoint",
                "mysql://k3suser:my$ql-pw@tcp(db.example:3306)/kine",
            ],
            [
                "k3s",
                "server",
                "--datastore-endpoint",
                "mysql://k3suser:<redacted>@tcp(db.example:3306)/kine",
            ],
            ["my$ql-pw"],
        ),
        (
            [
                "env",
                "K3S_TOKEN=envtok42",
                "K3S_AGENT_TOKEN=agenttok42",
                "K3S_DATASTORE_ENDPOINT=postgres://u:pgpass77@pg/k3s",
                "K3S_TOKEN_FILE=/run/tok",
                "k3s",
                "agent",
            ],
            [
                "env",
                "K3S_TOKEN=<redacted>",
                "K3S_AGENT_TOKEN=<redacted>",
                "K3S_DATASTORE_ENDPOINT=postgres://u:<redacted>@pg/k3s",
                "K3S_TOKEN_FILE=/run/tok",
                "k3s",
                "agent",
            ],
            ["envtok42", "agenttok42", "pgpass77"],
        ),
        (
            [
                "k3s",
                "server",
                "--etcd-s3",
                "--etcd-s3-access-key=AKIAEXAMPLE",
                "--etcd-s3-secret-key",
                "s3key/xyz",
            ],
            [
                "k3s",
                "server",
                "--etcd-s3",
                "--etcd-s3-access-key=<redacted>",
                "--etcd-s3-secret-key",
                REDACTED,
            ],
            ["AKIAEXAMPLE", "s3key/xyz"],
        ),
        (
            ["k3s", "server", "--vpn-auth=name=tailscale,joinKey=tskey-abc"],
            ["k3s", "server", "--vpn-auth=<redacted>"],
            ["tskey-abc"],
        ),
        (
            # booleans that merely contain a secret word keep the next flag intact
            [
                "k3s",
                "server",
                "--secrets-encryption",
                "--cluster-init",
                "--kube-apiserver-arg",
                "oidc-client-secret=oidcsecret1",
            ],
            [
                "k3s",
                "server",
                "--secrets-encryption",
                "--cluster-init",
                "--kube-apiserver-arg",
                "oidc-client-secret=<redacted>",
            ],
            ["oidcsecret1"],
        ),
        (
            [
                "curl",
                "-sk",
                "-H",
                "Authorization: Bearer eyJhbGciOi.payload.sig",
                "https://127.0.0.1:6443/readyz",
            ],
            [
                "curl",
                "-sk",
                "-H",
                "Authorization: Bearer <redacted>",
                "https://127.0.0.1:6443/readyz",
            ],
            ["eyJhbGciOi.payload.sig"],
        ),
        (
            ["sh", "-c", "k3s server --token 'quoted tok' --cluster-reset"],
            ["sh", "-c", "k3s server --token <redacted> --cluster-reset"],
            ["quoted tok"],
        ),
        (
            ["etcd", "--name", "node1", "--password=etcdpw1"],
            ["etcd", "--name", "node1", "--password=<redacted>"],
            ["etcdpw1"],
        ),
    ],
)
def test_redact_argv_real_shapes(argv: list[str], expected: list[str], secrets: list[str]) -> None:
    out = redact_argv(argv)
    assert out == expected
    joined = "\0".join(out)
    for s in secrets:
        assert s not in joined


def test_iptables_t_is_not_a_token() -> None:
    # -t is k3s's short --token, but iptables' table: k3s helper execs must stay readable.
    argv = ["iptables", "-t", "nat", "-A", "KUBE-POSTROUTING", "-j", "MASQUERADE"]
    assert redact_argv(argv) == argv


def test_argv_without_secrets_is_unchanged() -> None:
    argv = [
        "containerd",
        "-c",
        "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
        "-a",
        "/run/k3s/containerd/containerd.sock",
        "--root",
        "/var/lib/rancher/k3s/agent/containerd",
    ]
    assert redact_argv(argv) == argv
    assert redact_argv([]) == []


def test_redaction_is_idempotent() -> None:
    argv = ["k3s", "server", "--token=abc", "--datastore-endpoint=postgres://a:b@c/d", "-t", "x"]
    once = redact_argv(argv)
    assert redact_argv(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"join with {NODE_TOKEN} now",
            "join with " + NODE_TOKEN.rsplit(":", 1)[0] + ":<redacted> now",
        ),
        ("Authorization: Bearer abc.def", "Authorization: Bearer <redacted>"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic <redacted>"),
        (
            "dsn postgres://k3s:hunter2@db:5432/k3s?sslmode=disable",
            "dsn postgres://k3s:<redacted>@db:5432/k3s?sslmode=disable",
        ),
        ("K3S_TOKEN=abc k3s agent", "K3S_TOKEN=<redacted> k3s agent"),
        ('token: "yaml-secret"', "token: <redacted>"),
        ("password=p@ss&x=1", "password=<redacted>"),
        ("https://user@host/path no password", "https://user@host/path no password"),
        (
            "Running kube-apiserver --advertise-port=6443 --token-auth-file=/var/lib/tok.csv",
            "Running kube-apiserver --advertise-port=6443 --token-auth-file=/var/lib/tok.csv",
        ),
        ("", ""),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_password_with_at_sign_is_fully_hidden() -> None:
    out = redact_text("postgres://k3s:p@ss@word@db/k3s")
    assert "p@ss" not in out and "word" not in out
    assert out.startswith("postgres://k3s:")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("--token", True),
        ("--agent-token", True),
        ("K3S_TOKEN", True),
        ("--token-file", False),
        ("K3S_TOKEN_FILE", False),
        ("--db-password", True),
        ("--cluster-secret", True),
        ("--secrets-encryption", False),
        ("--server", False),
        ("--datastore-endpoint", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
