"""`tuimail serve` as a real process: durable 250 under SIGKILL, clean SIGTERM, bind errors."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys

import pytest

from tests.helpers import PASSWORD, make_config, move_taken_ports
from tuimail.config import Config, save_settings
from tuimail.core.directory import Directory


def start_serve(config: Config) -> subprocess.Popen:
    """`tuimail serve` on the config's ports, once it says it is serving. A port another process
    took after `free_port()` chose it makes serve refuse to start (its one line, exit 1): that
    port gets a new number and serve starts again (`move_taken_ports`)."""
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuimail", "serve", "--config", str(config.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        said = []
        for line in proc.stderr:  # wait for the ready line, not for a time
            if line.startswith("tuimail serving:"):
                return proc
            said.append(line)
        proc.wait(10)
        if proc.returncode != 1 or not move_taken_ports(config, "".join(said)):
            raise AssertionError(f"serve did not start (exit {proc.returncode}): {''.join(said)}")
    raise AssertionError("serve's ports keep being taken")


@pytest.fixture
def config(tmp_path):
    config = make_config(tmp_path)
    Directory(config).add_account("tatareva@lab.test", PASSWORD, admin=True)
    return config


def test_sigkill_right_after_250_loses_nothing(config):
    proc = start_serve(config)
    body = b"Subject: durable\r\n\r\n" + b"line of mail\r\n" * 200
    try:
        client = smtplib.SMTP("127.0.0.1", config.settings.ports.smtp)
        client.ehlo("me")
        client.mail("tester@lab.test")
        client.rcpt("tatareva@lab.test")
        code, _ = client.data(body)
        assert code == 250
        os.kill(proc.pid, signal.SIGKILL)  # no chance to flush anything after the 250
        proc.wait(10)
    finally:
        proc.kill()
    new = config.data_dir / "lab.test" / "tatareva" / "new"
    [stored] = list(new.iterdir())
    assert stored.read_bytes().endswith(body.replace(b"\r\n", b"\n"))
    assert not list((new.parent / "tmp").iterdir())


def test_sigterm_says_goodbye_flushes_logs_and_exits_0(config):
    proc = start_serve(config)
    sock = socket.create_connection(("127.0.0.1", config.settings.ports.smtp), timeout=10)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220")
    sock.sendall(b"helo waiting\n")
    assert reader.readline().startswith(b"250")
    proc.send_signal(signal.SIGTERM)
    assert reader.readline().startswith(b"421 4.3.2")
    assert reader.read() == b""
    assert proc.wait(10) == 0
    log = (config.log_dir / "SMTP-in.log").read_text()
    assert "<-- helo waiting" in log and "server stopping" in log
    assert "tuimail stopped" in (config.log_dir / "system.log").read_text()


def test_port_in_use_is_one_clear_line_and_a_failure(config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config.settings.ports.smtp = taken.getsockname()[1]
        save_settings(config.settings, config.path)
        result = subprocess.run(
            [sys.executable, "-m", "tuimail", "serve", "--config", str(config.path)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{config.settings.ports.smtp} (smtp): port in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_privileged_port_without_root_says_how_to_fix(config):
    if os.geteuid() == 0:
        pytest.skip("root may bind any port")
    config.settings.ports.smtp = 25
    save_settings(config.settings, config.path)
    result = subprocess.run([sys.executable, "-m", "tuimail", "serve", "--config", str(config.path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "CAP_NET_BIND_SERVICE" in result.stderr
