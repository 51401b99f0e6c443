"""Issue 13: `tuimail serve` in a subprocess, monitors attached over the control socket.

A Pilot-driven monitor attaches, sees a live SMTP session, kills it (the client gets its 421),
detaches with `q`, and the server still answers; two monitors at once; a real monitor in a pty
killed with SIGKILL leaves the server untouched; a server that dies is reported and the monitor
offers to start one; a second `serve` on the same config is refused naming the pid.
"""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import smtplib
import socket
import subprocess
import sys
import threading

from tests.control.conftest import cli, system_log, wait_for
from tests.tui.tools import screen_text, until
from tuimail.control.connect import client_for
from tuimail.control.remote import SocketClient
from tuimail.core.events import LineIn
from tuimail.tui.app import TuimailApp
from tuimail.tui.dialogs.confirm import ConfirmDialog


def smtp_greets(port: int) -> bool:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.noop()[0] == 250


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def open_student_session(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    read_until(sock, b"\r\n")
    sock.sendall(b"helo student\n")  # as telnet sends it
    read_until(sock, b"250")
    return sock


async def test_a_monitor_attaches_kills_a_session_and_detaches_leaving_the_server_running(served):
    proc = served.start()
    config = served.config
    app = TuimailApp(config, client=client_for(config), cursor_blink=False, first_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, app.engine_ready.is_set, what="attached")
        assert app.client.attached
        await until(pilot, lambda: f"attached to tuimail serve, pid {proc.pid}" in screen_text(app), what="header")
        sock = await asyncio.to_thread(open_student_session, config.settings.ports.smtp)
        await until(pilot, lambda: "helo student" in screen_text(app), what="the session's row")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        reply = await asyncio.to_thread(read_until, sock, b"421")
        assert b"421 4.3.2" in reply
        await until(pilot, lambda: len(app.client.sessions) == 0, what="row gone")
        await pilot.press("q")  # no question: q only detaches
        await until(pilot, lambda: app.return_code is not None, what="detached")
    sock.close()
    assert proc.poll() is None and smtp_greets(config.settings.ports.smtp)
    log = system_log(config)
    assert f"Control command session.kill(sid=1) from uid {os.getuid()}" in log
    assert "Monitor detached" in log and "tuimail stopped" not in log
    blocks = (config.log_dir / "SMTP-in.log").read_text()
    assert f"Session closed by uid {os.getuid()}" in blocks


async def test_two_monitors_see_the_same_sessions_and_events(served):
    served.start()
    config = served.config
    other = SocketClient(config)
    seen: list = []
    other.subscribe(seen.append)
    await other.start()
    app = TuimailApp(config, client=client_for(config), cursor_blink=False, first_run=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, app.engine_ready.is_set, what="attached")
            sock = await asyncio.to_thread(open_student_session, config.settings.ports.smtp)
            await until(pilot, lambda: "helo student" in screen_text(app), what="row in the Pilot monitor")
            await until(pilot, lambda: [s.last_command for s in other.sessions] == ["helo student"], what="other monitor")
            assert any(isinstance(e, LineIn) and e.text == "helo student" for e in seen)
            [session] = list(other.sessions)
            assert await other.kill_session(session.sid)  # the second monitor kills it...
            await until(pilot, lambda: len(app.client.sessions) == 0, what="...the first sees it go")
            sock.close()
            await pilot.press("q")
    finally:
        await other.close()


def test_a_monitor_killed_with_sigkill_leaves_the_server_untouched(served):
    proc = served.start()
    config = served.config
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real monitor in a terminal
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "tuimail", "--config", str(config.path)])
    drained = threading.Thread(target=_drain, args=(fd,), daemon=True)
    drained.start()
    try:
        wait_for(lambda: f"Monitor attached: uid {os.getuid()} (pid {pid})" in system_log(config), what="monitor attached")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        wait_for(lambda: f"Monitor detached: uid {os.getuid()} (pid {pid})" in system_log(config), what="detach noticed")
    finally:
        os.close(fd)
    assert proc.poll() is None and smtp_greets(config.settings.ports.smtp)
    status = cli(config, "status")
    assert status.returncode == 0 and f"pid {proc.pid}" in status.stdout
    assert "tuimail stopped" not in system_log(config)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


async def test_a_server_that_dies_is_reported_and_the_monitor_offers_to_start_one(served):
    proc = served.start()
    config = served.config
    app = TuimailApp(config, client=client_for(config), cursor_blink=False, first_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, app.engine_ready.is_set, what="attached")
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="offer")
        await until(pilot, lambda: "has stopped" in screen_text(app), what="said so")
        await pilot.press("y")  # start the servers here
        await until(pilot, lambda: app.client.kind == "in-process" and app.engine_ready.is_set(), what="in-process")
        await until(pilot, lambda: app.client.listeners.get("smtp") is not None and app.client.listeners["smtp"].up)
        assert await asyncio.to_thread(smtp_greets, config.settings.ports.smtp)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, what="quit")


def test_a_second_serve_on_the_same_config_is_refused_naming_the_pid(served):
    proc = served.start()
    second = subprocess.run([sys.executable, "-m", "tuimail", "serve", "--config", str(served.config.path)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"already running on this config (pid {proc.pid}, serve" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert proc.poll() is None and smtp_greets(served.config.settings.ports.smtp)


def test_the_command_line_goes_through_the_running_server(served):
    proc = served.start()
    config = served.config
    sock = open_student_session(config.settings.ports.smtp)
    status = cli(config, "status")
    assert status.returncode == 0, status.stderr
    assert f"pid {proc.pid}" in status.stdout and "1 live (SMTP 1)" in status.stdout
    assert f"SMTP :{config.settings.ports.smtp} up" in status.stdout
    listed = cli(config, "session", "list")
    assert listed.returncode == 0 and "helo student" in listed.stdout and "127.0.0.1:" in listed.stdout
    killed = cli(config, "session", "kill", "1")
    assert killed.returncode == 0 and "session 1 killed" in killed.stdout
    assert b"421" in read_until(sock, b"421")
    again = cli(config, "session", "kill", "1")
    assert again.returncode == 1 and "session 1 is not live" in again.stderr
    added = cli(config, "account", "add", "ivanov@lab.test", "--password-stdin", stdin="Secret123\n")
    assert added.returncode == 0, added.stderr
    log = system_log(config)
    assert f"account.add(address='ivanov@lab.test', password=*****" in log and f"from uid {os.getuid()}" in log
    assert "Secret123" not in log
    # the running server knows the account at once: a POP3 login works
    import poplib

    pop = poplib.POP3("127.0.0.1", config.settings.ports.pop3, timeout=10)
    pop.user("ivanov@lab.test")
    assert pop.pass_("Secret123").startswith(b"+OK")
    pop.quit()
    dup = cli(config, "account", "add", "ivanov@lab.test", "--password-stdin", stdin="Secret123\n")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    sock.close()


def test_without_a_server_status_says_so_and_accounts_edit_the_files(served):
    config = served.config
    status = cli(config, "status")
    assert status.returncode == 1 and "no tuimail server is running" in status.stderr
    added = cli(config, "account", "add", "petrova@lab.test", "--password-stdin", stdin="Secret123\n")
    assert added.returncode == 0 and "petrova@lab.test" in (config.data_dir / "accounts.json").read_text()


async def test_settings_saved_in_an_attached_monitor_apply_in_the_server(served):
    served.start()
    config = served.config
    other = SocketClient(config)
    await other.start()
    app = TuimailApp(config, client=client_for(config), cursor_blink=False, first_run=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, app.engine_ready.is_set, what="attached")
            problems = await app.client.apply_settings({"server": {"hostname": "mail.group42.lab"}})
            assert problems == []
            # the reply comes after the new state: this monitor's form reads the new value at once
            assert app.client.config.settings.server.hostname == "mail.group42.lab"
            await until(pilot, lambda: other.hostname == "mail.group42.lab", what="the other monitor")
            await until(pilot, lambda: "mail.group42.lab" in screen_text(app), what="header")
            await pilot.press("q")
    finally:
        await other.close()
    greeting = await asyncio.to_thread(lambda: smtplib.SMTP("127.0.0.1", config.settings.ports.smtp, timeout=10))
    assert "mail.group42.lab" in greeting.ehlo()[1].decode()
    greeting.quit()
    assert "hostname = \"mail.group42.lab\"" in config.path.read_text()
    assert f"settings.apply(sections={{'server': {{'hostname': 'mail.group42.lab'}}}}) from uid {os.getuid()}" in system_log(config)


async def test_an_attached_monitor_follows_a_language_change_at_once(served):
    """Issue 10 §5: `[server] language` changed by another monitor (or SIGHUP) switches an attached
    monitor without a restart, and the server's log phrases with it."""
    from tuimail import i18n

    served.start()
    config = served.config
    other = SocketClient(config)
    await other.start()
    app = TuimailApp(config, client=client_for(config), cursor_blink=False, first_run=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, app.engine_ready.is_set, what="attached")
            assert "1 Sessions" in screen_text(app)
            assert await other.apply_settings({"server": {"language": "ru"}}) == []
            await until(pilot, lambda: "1 Сессии" in screen_text(app), what="the monitor in Russian")
            await until(pilot, lambda: "Выход" in screen_text(app).splitlines()[-1], what="its footer")
            sock = await asyncio.to_thread(open_student_session, config.settings.ports.smtp)
            sock.close()
            await until(pilot, lambda: "Прием SMTP соединения" in (config.log_dir / "SMTP-in.log").read_text(
                encoding="utf-8", errors="replace") if (config.log_dir / "SMTP-in.log").exists() else False,
                what="the server's log phrases in Russian")
            await pilot.press("q")
    finally:
        await other.close()
        i18n.set_language("en")
