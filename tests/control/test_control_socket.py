"""The control socket's bad input (issue 13): garbage, a wrong version, a client that never reads, a
stale socket after a crash, a path that is not a socket. The servers run in the test's own loop
(control.host.Host, as `tuimail serve` runs them); clients are raw Unix sockets typed by hand."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat

import pytest

from tests.helpers import PASSWORD, make_config
from tuimail.config import Config
from tuimail.control import AlreadyRunning, wire
from tuimail.control.host import Host, socket_path
from tuimail.control.remote import SocketClient
from tuimail.core.directory import Directory
from tuimail.core.runlock import PID_FILE, holder as running


@pytest.fixture
async def host(tmp_path):
    config = make_config(tmp_path)
    Directory(config).add_account("tatareva@lab.test", PASSWORD)
    host = Host(config)
    await host.start()
    yield host
    await host.stop()


async def until(predicate, timeout: float = 10.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        await asyncio.sleep(0.01)


async def raw(host: Host) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(str(socket_path(host.engine.config)))


async def smtp_still_answers(host: Host) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", host.engine.config.settings.ports.smtp)
    greeting = await reader.readline()
    writer.write(b"quit\r\n")
    await reader.readline()
    writer.close()
    return greeting.startswith(b"220")


async def test_the_socket_is_0660_and_the_lock_names_the_pid(host):
    path = socket_path(host.engine.config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    holder = running(host.engine.config.data_dir)
    assert holder is not None and holder.pid == os.getpid() and holder.kind == "serve"
    second = Host(Config.load(host.engine.config.path))  # a second server on the same config
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        await second.start()


async def test_garbage_gets_an_error_and_the_connection_closes_others_unaffected(host):
    monitor = SocketClient(host.engine.config)
    await monitor.start()
    reader, writer = await raw(host)
    writer.write(b"EHLO i am not a monitor\r\n")
    reply = json.loads(await reader.readline())
    assert "error" in reply and "JSON" in reply["error"]
    assert await reader.read() == b""  # closed
    writer.close()
    assert (await monitor.status())["hostname"] == "mail.lab.test"  # the other client goes on
    assert await smtp_still_answers(host)
    await monitor.close()


async def test_a_call_before_the_hello_or_a_wrong_version_is_refused_clearly(host):
    reader, writer = await raw(host)
    writer.write(wire.dumps({"id": 1, "call": "status", "args": {}}))
    assert "hello" in json.loads(await reader.readline())["error"]
    writer.close()
    reader, writer = await raw(host)
    writer.write(json.dumps({**wire.hello("monitor"), "version": 99}).encode() + b"\n")
    error = json.loads(await reader.readline())["error"]
    assert "wire version mismatch" in error and "99" in error
    assert await reader.read() == b""
    writer.close()


async def test_an_unknown_command_or_bad_arguments_are_one_line_errors(host):
    client = SocketClient(host.engine.config, role="cli", subscribe=False)
    from tuimail.control import CommandError

    with pytest.raises(CommandError, match="unknown command 'rm.rf'"):
        await client.call("rm.rf")
    with pytest.raises(CommandError, match="bad arguments"):
        await client.call("session.kill", colour="red")
    with pytest.raises(CommandError, match="not hosted|domain"):
        await client.add_account("x@nowhere.test", PASSWORD)
    assert await client.kill_session(999) is False
    await client.close()


async def test_a_client_that_never_reads_is_dropped_and_the_others_keep_going(host):
    host.control.max_pending = 64 * 1024
    good = SocketClient(host.engine.config)
    received: list = []
    good.subscribe(received.append)
    await good.start()
    sleeper = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.connect(str(socket_path(host.engine.config)))
    sleeper.sendall(wire.dumps(wire.hello("monitor")) + wire.dumps({"subscribe": True}))
    await until(lambda: len(host.hub.subscribers) == 2, what="both subscribed")
    for n in range(3000):  # events the sleeper never reads
        host.engine.bus.system(f"load line {n} " + "x" * 200)
        if n % 100 == 0:
            await asyncio.sleep(0)
    await until(lambda: len(host.hub.subscribers) == 1, what="the sleeper dropped")
    await until(lambda: any(getattr(e, "text", "") == "load line 2999 " + "x" * 200 for e in received),
                what="the good monitor got everything")
    assert await smtp_still_answers(host)
    sleeper.close()
    await good.close()


async def test_a_stale_socket_and_pid_file_after_a_crash_do_not_block_a_start(tmp_path):
    config = make_config(tmp_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / PID_FILE).write_text("4242 serve\n")  # a crashed server's file, no lock held
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path(config)))  # a socket file nobody listens on
    stale.close()
    host = Host(config)
    await host.start()
    try:
        assert host.control is not None
        client = SocketClient(config, role="cli", subscribe=False)
        assert (await client.status())["pid"] == os.getpid()
        await client.close()
    finally:
        await host.stop()
    assert running(config.data_dir) is None


async def test_a_path_that_is_not_a_socket_is_reported_and_mail_still_flows(tmp_path):
    config = make_config(tmp_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    socket_path(config).write_text("not a socket")
    lines: list[str] = []
    host = Host(config)
    host.engine.bus.subscribe(lambda e: lines.append(getattr(e, "text", "")))
    await host.start()
    try:
        assert host.control is None
        assert any("exists and is not a socket" in line for line in lines)
        assert await smtp_still_answers(host)
    finally:
        await host.stop()
    assert socket_path(config).read_text() == "not a socket"


async def test_the_hub_is_on_the_bus_only_while_a_monitor_is_attached_and_then_gets_every_line(host):
    assert host.hub._unsubscribe is None  # nobody watches: a transcript line does not call the hub
    for _attach in range(2):  # the second monitor comes after the first one left
        monitor = SocketClient(host.engine.config)
        received: list = []
        monitor.subscribe(received.append)
        await monitor.start()
        await until(lambda: len(host.hub.subscribers) == 1, what="the monitor subscribed")
        assert await smtp_still_answers(host)
        await until(lambda: [getattr(e, "text", "")[:3] for e in received if type(e).__name__ in ("LineIn", "LineOut")]
                    == ["220", "qui", "221"], what="the monitor got the session's lines")
        await monitor.close()
        await until(lambda: not host.hub.subscribers, what="the monitor detached")
        assert host.hub._unsubscribe is None
