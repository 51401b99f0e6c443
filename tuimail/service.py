"""`tuimail service install`: a systemd unit for `tuimail serve` (systemd.service(5), systemd.exec(5)).

Type=notify (serve says READY=1 once every listener is bound, so `systemctl start` waits for it),
Restart=on-failure, CAP_NET_BIND_SERVICE as an ambient capability so ports 25/110/143 work for an
unprivileged user, and the usual hardening: the file system read-only except the data and log
directories and the config's folder (the Settings tab and `domain add` rewrite config.toml).
`systemctl reload tuimail` sends SIGHUP: config.toml is re-read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuimail.config import Config

UNIT_DIR = Path("/etc/systemd/system")
UNIT_NAME = "tuimail.service"


def unit_text(config: Config, user: str, python: str | None = None) -> str:
    python = python or sys.executable
    config_path = config.path.resolve()
    writable = sorted({str(config.data_dir), str(config.log_dir), str(config_path.parent)})
    return f"""# tuimail: the mail server as a service (written by `tuimail service install`)
[Unit]
Description=tuimail mail server (SMTP, POP3, IMAP) for {config_path}
Documentation=https://github.com/tuimail/tuimail#running-as-a-service
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
User={user}
ExecStart={python} -m tuimail serve --config {config_path}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
TimeoutStopSec=30
# ports below 1024 (25, 110, 143) without root
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={" ".join(writable)}
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
SystemCallArchitectures=native
# the control socket is 0660: members of the user's group may attach
UMask=0007

[Install]
WantedBy=multi-user.target
"""


def systemctl_hint(path: Path) -> str:
    name = path.name
    return (f"wrote {path}\nnow run:\n  sudo systemctl daemon-reload\n  sudo systemctl enable --now {name}\n"
            f"  systemctl status {name}        # and `tuimail` attaches to it\n"
            f"  sudo systemctl reload {name}   # re-read config.toml (SIGHUP)")
