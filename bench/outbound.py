"""Outbound relaying: N messages handed to a relay on loopback, which sends them on to a local sink.

The same sink (aiosmtpd in this process, answering 250 at once) receives from both relays:
- tuimail: `tuimail serve` with `[[routes]] domain = "*"` pointing at the sink and 127.0.0.0/8 in
  `trusted_networks` (so the load needs no AUTH);
- Postfix: a second Postfix instance of our own (its own config, queue and port in a temp dir;
  the peers' Postfix on :2526 is left alone) with `relayhost = [127.0.0.1]:<sink>`.

For each relay, in alternating rounds: C client connections send N messages (one connection carries
many messages, as an MTA or a mail client would); we measure the intake rate (N / time until the last
250), the end-to-end rate (N / time until the sink has the last one) and, per message, the time from
the relay's 250 to the sink's 250 (median and 95th percentile). Ratios are tuimail / Postfix.

    python bench/outbound.py --messages 1000 --concurrency 10 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from _server import free_port, start_serve

from tuimail.config import Config, DomainSettings, RouteSettings, Settings, save_settings  # noqa: E402

PEERS_POSTFIX = Path(os.environ.get("PEERS_DIR", "/work/peers")) / "postfix" / "etc"


class SinkHandler:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or b""
        start = data.find(b"X-Bench-Id: ")
        if start >= 0:
            key = data[start + 12: data.find(b"\r\n", start)].decode()
            with self.lock:
                self.arrived[key] = time.monotonic()
        return "250 2.0.0 sunk"


# ----- the relays ---------------------------------------------------------------------------------

class Tuimail:
    name = "tuimail"

    def __init__(self, sink_port: int, max_per_domain: int = 5) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tuimail-bench-out-"))
        settings = Settings(domains=[DomainSettings(name="bench.test")])
        settings.server.hostname = "relay.bench.test"
        settings.ports.address = "127.0.0.1"
        settings.ports.smtp, settings.ports.submission, settings.ports.pop3, settings.ports.imap = (
            free_port() for _ in range(4))
        settings.policy.trusted_networks = ["127.0.0.0/8"]
        settings.routes = [RouteSettings(domain="*", host="127.0.0.1", port=sink_port)]
        settings.outbound.max_per_domain = max_per_domain
        save_settings(settings, self.tmp / "config.toml")
        self.config = Config.load(self.tmp / "config.toml")
        self.port = settings.ports.smtp
        self.proc = start_serve([sys.executable, "-m", "tuimail", "serve", "--config", str(self.config.path)])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Postfix:
    """Our own Postfix instance: the peers' main.cf/master.cf with another port, queue and relayhost."""

    name = "postfix"

    def __init__(self, sink_port: int) -> None:
        if not (PEERS_POSTFIX / "main.cf").exists() or not shutil.which("postfix"):
            raise SystemExit(f"no Postfix to compare with ({PEERS_POSTFIX}/main.cf; see shared/peers/README.md)")
        self.tmp = Path(tempfile.mkdtemp(prefix="tuimail-bench-postfix-"))
        self.tmp.chmod(0o755)
        self.port = free_port()
        etc = self.tmp / "etc"
        etc.mkdir()
        main = (PEERS_POSTFIX / "main.cf").read_text()
        keep = [line for line in main.splitlines()
                if not line.startswith(("queue_directory", "data_directory", "maillog_file", "relayhost",
                                        "default_transport", "relay_transport", "virtual_", "mydestination"))]
        keep += [
            f"queue_directory = {self.tmp}/spool",
            f"data_directory = {self.tmp}/data",
            f"maillog_file = {self.tmp}/maillog",
            f"maillog_file_prefixes = {self.tmp}",
            "mydestination =",
            f"relayhost = [127.0.0.1]:{sink_port}",
            "smtp_tls_security_level = none",
        ]
        (etc / "main.cf").write_text("\n".join(keep) + "\n")
        master = (PEERS_POSTFIX / "master.cf").read_text().replace("127.0.0.1:2526 ", f"127.0.0.1:{self.port} ")
        (etc / "master.cf").write_text(master)
        for name in ("spool", "data"):
            (self.tmp / name).mkdir()
        shutil.chown(self.tmp / "data", "postfix", "postfix")
        self.etc = etc
        subprocess.run(["postfix", "-c", str(etc), "check"], check=True)
        subprocess.run(["postfix", "-c", str(etc), "start"], check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)  # bench only: waiting for a daemon we just started
        raise SystemExit("our Postfix instance did not start")

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ----- the load -------------------------------------------------------------------------------------

def send(port: int, keys: list[str], accepted: dict[str, float], body: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("load.bench.client")
        for key in keys:
            data = (f"From: load@bench.client\r\nTo: sink@far.test\r\nSubject: {key}\r\n"
                    f"Message-ID: <{key}@bench.client>\r\nX-Bench-Id: {key}\r\n\r\n").encode() + body
            client.sendmail("load@bench.client", ["sink@far.test"], data)
            accepted[key] = time.monotonic()


def run(relay, sink: SinkHandler, messages: int, concurrency: int, size: int, label: str) -> dict[str, float]:
    body = (b"x" * 70 + b"\r\n") * max(1, size // 72)
    keys = [f"{label}-{n}" for n in range(messages)]
    accepted: dict[str, float] = {}
    threads = [threading.Thread(target=send, args=(relay.port, keys[i::concurrency], accepted, body))
               for i in range(concurrency)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    intake = max(accepted.values()) - start
    deadline = time.monotonic() + 300
    while not all(k in sink.arrived for k in keys):
        if time.monotonic() > deadline:
            missing = sum(1 for k in keys if k not in sink.arrived)
            raise SystemExit(f"{relay.name}: {missing} message(s) never reached the sink")
        time.sleep(0.05)
    end = max(sink.arrived[k] for k in keys)
    delays = sorted(sink.arrived[k] - accepted[k] for k in keys)
    return {
        "intake": messages / intake,
        "end_to_end": messages / (end - start),
        "median_ms": statistics.median(delays) * 1000,
        "p95_ms": delays[int(len(delays) * 0.95) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-per-domain", type=int, default=5,
                        help="tuimail's [outbound] max_per_domain (Postfix keeps its default of 20 per destination)")
    args = parser.parse_args()

    handler = SinkHandler()
    sink_port = free_port()
    sink = Controller(handler, hostname="127.0.0.1", port=sink_port, server_hostname="sink.bench.test")
    sink.start()
    relays = [Tuimail(sink_port, args.max_per_domain), Postfix(sink_port)]
    results: dict[str, list[dict[str, float]]] = {r.name: [] for r in relays}
    try:
        for n in range(args.rounds):
            for relay in relays:
                figures = run(relay, handler, args.messages, args.concurrency, args.size, f"{relay.name}{n}")
                results[relay.name].append(figures)
                print(f"round {n + 1} {relay.name:8} intake {figures['intake']:7.0f} msg/s   end-to-end "
                      f"{figures['end_to_end']:7.0f} msg/s   250 -> sink: median {figures['median_ms']:6.1f} ms, "
                      f"p95 {figures['p95_ms']:7.1f} ms", flush=True)
    finally:
        for relay in relays:
            relay.stop()
        sink.stop()
    best = {name: {k: (max if k in ("intake", "end_to_end") else min)(r[k] for r in rs) for k in rs[0]}
            for name, rs in results.items()}
    t, p = best["tuimail"], best["postfix"]
    print(f"\nbest of {args.rounds} rounds, {args.messages} messages of {args.size} bytes over {args.concurrency} connections")
    print(f"{'':10}{'intake msg/s':>14}{'end-to-end msg/s':>18}{'median ms':>11}{'p95 ms':>9}")
    for name, f in (("tuimail", t), ("postfix", p)):
        print(f"{name:10}{f['intake']:14.0f}{f['end_to_end']:18.0f}{f['median_ms']:11.1f}{f['p95_ms']:9.1f}")
    print(f"{'ratio':10}{t['intake'] / p['intake']:14.2f}{t['end_to_end'] / p['end_to_end']:18.2f}"
          f"{t['median_ms'] / p['median_ms']:11.2f}{t['p95_ms'] / p['p95_ms']:9.2f}")


if __name__ == "__main__":
    main()
