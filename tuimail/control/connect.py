"""Which kind of `EngineClient` a front end gets: attached over the control socket when a server
holds the config's pid lock, else the servers in this process (the default for a one-person lab)."""

from __future__ import annotations

import errno
import socket

from tuimail.config import Config
from tuimail.control.client import EngineClient
from tuimail.core.runlock import Holder, holder as running


def running_server(config: Config) -> Holder | None:
    """The pid and kind of the server running on `config`, or None."""
    return running(config.data_dir)


def client_for(config: Config, role: str = "monitor") -> EngineClient:
    """A socket client when a server runs on `config`; else an in-process client that owns the
    servers (and takes the lock, opens the control socket and the metrics when started)."""
    if running_server(config) is not None:
        from tuimail.control.remote import SocketClient

        return SocketClient(config, role=role, subscribe=role == "monitor")
    from tuimail.control.host import Host
    from tuimail.control.local import InProcessClient
    from tuimail.servers.engine import Engine

    engine = Engine(config)
    return InProcessClient(engine, host=Host(engine, kind="monitor"))


def unreachable(client: EngineClient) -> str | None:
    """Why an attached client cannot open the server's socket at all (permissions), or None. A
    server that is merely going away is left to the monitor, which offers to start one."""
    path = getattr(client, "path", None)
    if not client.attached or path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            holder = running_server(client.config)
            who = f"pid {holder.pid}" if holder and holder.pid else "another process"
            return (f"a server ({who}) runs on this config but its control socket {path} is not yours to "
                    f"open ({e.strerror}); run as its user or a member of its group")
        return None
    finally:
        sock.close()
    return None
