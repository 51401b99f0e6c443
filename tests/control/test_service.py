"""Issue 13, the service side: `service install --print`, SIGHUP re-reading config.toml (a bad edit
keeps the running settings and names file, line and key), and the Prometheus endpoint scraped and
read with prometheus-client's own text parser."""

from __future__ import annotations

import poplib
import re
import signal
import smtplib
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.control.conftest import cli, system_log, wait_for
from tests.helpers import free_port
from tuimail.config import Config, save_settings


def test_service_install_print_writes_a_hardened_unit(served):
    config = served.config
    result = cli(config, "service", "install", "--user", "mailer", "--print")
    assert result.returncode == 0, result.stderr
    unit = result.stdout
    keys = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert keys["Type"] in ("notify", "simple") and keys["Restart"] == "on-failure"
    assert keys["User"] == "mailer"
    assert keys["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert keys["NoNewPrivileges"] == "true" and keys["ProtectSystem"] == "strict"
    writable = keys["ReadWritePaths"].split()
    assert str(config.data_dir) in writable and str(config.log_dir) in writable
    assert keys["ExecStart"].endswith(f"-m tuimail serve --config {config.path.resolve()}")
    assert keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "[Install]" in unit and keys["WantedBy"] == "multi-user.target"
    bad = cli(config, "service", "install", "--user", "a b", "--print")
    assert bad.returncode == 1 and "not a user name" in bad.stderr


def test_sighup_keeps_the_running_settings_on_a_bad_edit_and_applies_a_good_one(served):
    proc = served.start()
    config = served.config
    path = config.path
    text = path.read_text()
    broken = re.sub(r"(?m)^max_connections = \d+$", 'max_connections = "lots"', text)
    path.write_text(broken)
    line = broken.splitlines().index('max_connections = "lots"') + 1
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP:" in system_log(config), what="bad edit logged")
    log = system_log(config)
    assert f"config.toml:{line}: policy.max_connections" in log and "running settings stay" in log
    assert proc.poll() is None

    fresh = Config(config.settings.model_copy(deep=True), path)
    new_port = free_port()
    fresh.settings.ports.pop3 = new_port
    fresh.settings.server.hostname = "mail.group42.lab"
    save_settings(fresh.settings, path)
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "applied by SIGHUP" in system_log(config), what="good edit applied")
    pop = poplib.POP3("127.0.0.1", new_port, timeout=10)
    assert b"mail.group42.lab" in pop.getwelcome()
    pop.quit()
    status = cli(config, "status")
    assert f"POP3 :{new_port} up" in status.stdout and "mail.group42.lab" in status.stdout


def test_metrics_are_scraped_and_parsed_with_the_prometheus_parser(served):
    config = served.config
    port = free_port()
    config.settings.metrics.address = f"127.0.0.1:{port}"
    save_settings(config.settings, config.path)
    served.start()
    with smtplib.SMTP("127.0.0.1", config.settings.ports.smtp, timeout=10) as client:
        client.sendmail("ivanov@lab.test", ["tatareva@lab.test"], b"Subject: hi\r\n\r\nhello\r\n")
    pop = poplib.POP3("127.0.0.1", config.settings.ports.pop3, timeout=10)
    pop.user("tatareva@lab.test")
    try:
        pop.pass_("wrong")
    except poplib.error_proto:
        pass
    pop.quit()

    def scrape() -> dict[str, float]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        samples = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    wait_for(lambda: scrape().get("tuimail_bytes_received_total{protocol=POP3}", 0) > 0, what="sessions closed")
    samples = scrape()
    assert samples["tuimail_connections_accepted_total{protocol=SMTP}"] == 1
    assert samples["tuimail_connections_accepted_total{protocol=POP3}"] == 1
    assert samples["tuimail_messages_received_total{}"] == 1 and samples["tuimail_messages_delivered_total{}"] == 1
    assert samples["tuimail_logins_total{result=failed}"] == 1 and samples["tuimail_logins_total{result=ok}"] == 0
    assert samples["tuimail_sessions_live{protocol=SMTP}"] == 0
    assert samples["tuimail_connections_refused_total{}"] == 0 and "tuimail_blocked_addresses{}" in samples
    assert samples["tuimail_command_seconds_count{protocol=SMTP}"] >= 4  # EHLO MAIL RCPT DATA QUIT...
    assert any(re.match(r"tuimail_command_seconds_bucket\{le=.*,protocol=POP3\}", k) for k in samples)
    assert samples["tuimail_uptime_seconds{}"] > 0
    assert "Prometheus metrics on http://127.0.0.1:" in system_log(config)


def test_serve_names_a_taken_port_and_the_fixture_moves_it(served):
    """`serve` on a port another process holds: one line naming it and exit 1; the test fixture then
    gives that listener a new number and starts again (a second test run on the machine can take a
    port between `free_port()` and serve's bind)."""
    import socket

    taken = served.config.settings.ports.imap
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        proc = served.start()
        assert proc.poll() is None
        first = served.procs[0]
        assert first.wait(10) == 1
        assert f"cannot listen on 127.0.0.1:{taken} (imap): port in use" in first.err_path.read_text()
        assert served.config.settings.ports.imap != taken
        assert f"IMAP :{served.config.settings.ports.imap} up" in proc.err_path.read_text()
