"""The smarthost's password (`tuimail outbound relay-password --password-stdin`): kept in
`<data_dir>/relay-password` with mode 0600, never in config.toml and never in a log.

It must be sent to the relay as it is (AUTH needs the clear text), so it cannot be hashed; the file
mode is what protects it (SECURITY.md).
"""

from __future__ import annotations

from pathlib import Path

from tuimail.core.atomic import atomic_write

RELAY_PASSWORD_FILE = "relay-password"


def path(data_dir: Path) -> Path:
    return Path(data_dir) / RELAY_PASSWORD_FILE


def save(data_dir: Path, password: str) -> Path:
    if not password or any(c in password for c in "\r\n\0"):
        raise ValueError("the relay password must be one non-empty line")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    target = path(data_dir)
    atomic_write(target, password.encode("utf-8"), mode=0o600)
    return target


def load(data_dir: Path) -> str | None:
    try:
        return path(data_dir).read_text(encoding="utf-8").strip("\r\n") or None
    except OSError:
        return None
