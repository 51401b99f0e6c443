"""Issue 16's goals, measured on this machine: tuimail under attack from hostile clients.

    .venv/bin/python bench/hostile.py                 # everything (a few minutes)
    .venv/bin/python bench/hostile.py --only fairness --seconds 3

Sections (each prints its figures and the goal beside them):
- memory: RSS (from /proc) of `tuimail serve` for one and for 50 unauthenticated hostile connections
  (goals: < 1 MiB each, < 100 MiB together), and after they close (goal: back to the baseline).
- fairness: another session's NOOP round trip (p50 / p99 / max) while one connection attacks with a
  literal flood, a command flood, a huge FETCH, a FETCH it never reads, and ENVELOPE of a message with
  a million header lines (goal: p99 < 50 ms). The two floods run against Dovecot too (:2144, user
  `test`) for comparison; the others need large messages in its mailbox, which the peers' users keep
  for other benchmarks, so they run against tuimail only.
- crash: SIGKILL at random during 1,000 mixed IMAP operations and POP3 QUITs (tests/servers/mixed_ops.py)
  (goals: 0 lost, 0 in two folders after a MOVE, 0 duplicates, 0 UIDs reused).
- fuzz: 100,000 mutated lines per protocol over sockets, then TLS probes like testssl's (old versions,
  refused ciphers, garbage after STARTTLS) on every TLS endpoint (goal: 0 tracebacks, 0 internal errors).

All traffic goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import base64
import imaplib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import PASSWORD, free_port, make_config  # noqa: E402
from tests.servers.mixed_ops import FOLDERS, Model, Worker, reconcile, scan  # noqa: E402
from tests.servers.test_crash import Server  # noqa: E402
from tests.servers.test_hostile_memory import rss  # noqa: E402
from tuimail.core.directory import Directory  # noqa: E402
from tuimail.store import MailStore  # noqa: E402

MIB = 1024 * 1024
USER = "tester@lab.test"
PEER = ("127.0.0.1", 2144, "test", "testpass")  # Dovecot from ../shared/peers


def start(tmp: Path, **policy) -> tuple[Server, object]:
    config = make_config(tmp, **policy)
    ports = config.settings.ports
    ports.smtps, ports.pop3s, ports.imaps = free_port(), free_port(), free_port()
    from tuimail.config import save_settings

    save_settings(config.settings, config.path)
    Directory(config).add_account(USER, PASSWORD)
    return Server(config.path), config


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.recv(1000)
    return sock


# ----- memory ----------------------------------------------------------------------------------

def hostile_prelogin(sock: socket.socket) -> None:
    """What a hostile client can make an unauthenticated connection hold: a command of literals up to
    the limits, left unfinished, then bytes of a line with no end."""
    try:
        sock.sendall(b"a NOOP" + b"".join(b" {4096+}\r\n" + b"x" * 4096 for _ in range(15)))
        sock.sendall(b" " + b"y" * 30000)
        sock.sendall(b"b NOOP {%d+}\r\n" % (25 * MIB) + b"z" * MIB)  # the old attack: refused, closed
    except OSError:
        pass


def memory() -> None:
    print("== memory (RSS of tuimail serve, from /proc/<pid>/status)")
    with tempfile.TemporaryDirectory() as tmp:
        server, config = start(Path(tmp))
        try:
            pid, port = server.proc.pid, config.settings.ports.imap
            connect(port).close()
            time.sleep(1.5)  # let the server settle (a measurement, not synchronisation)
            base = rss(pid)
            one = connect(port)
            hostile_prelogin(one)
            time.sleep(0.5)
            single = rss(pid) - base
            many = [connect(port) for _ in range(49)]
            threads = [threading.Thread(target=hostile_prelogin, args=(s,)) for s in many]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            time.sleep(0.5)
            fifty = rss(pid) - base
            for s in [one, *many]:
                s.close()
            deadline = time.monotonic() + 30
            while (after := rss(pid) - base) > 2 * MIB and time.monotonic() < deadline:
                time.sleep(0.2)
            print(f"baseline {base / MIB:.1f} MiB")
            print(f"one unauthenticated hostile connection: {single / 1024:+.0f} KiB   (goal < 1024 KiB)")
            print(f"50 hostile connections from one address: {fifty / MIB:+.1f} MiB   (goal < 100 MiB)")
            print(f"after they closed: {after / MIB:+.1f} MiB from the baseline   (goal: back to it)")
        finally:
            server.stop()


# ----- fairness --------------------------------------------------------------------------------

def victim_noops(host: str, port: int, user: str, password: str, stop: threading.Event) -> list[float]:
    client = imaplib.IMAP4(host, port, timeout=60)
    client.login(user, password)
    times = []
    while not stop.is_set():
        t = time.perf_counter()
        client.noop()
        times.append((time.perf_counter() - t) * 1000)
    client.logout()
    return times


def drain(sock: socket.socket, stop: threading.Event, lines: list[int] | None = None) -> None:
    try:
        sock.settimeout(0.5)
    except OSError:
        return
    while not stop.is_set():
        try:
            data = sock.recv(1 << 16)
            if lines is not None:
                lines[0] += data.count(b"\n")
            if not data:
                return
        except TimeoutError:
            continue
        except OSError:
            return


def flood_literals(host: str, port: int, stop: threading.Event, **_) -> None:
    while not stop.is_set():
        sock = socket.create_connection((host, port), timeout=30)
        threading.Thread(target=drain, args=(sock, stop), daemon=True).start()
        try:
            while not stop.is_set():
                sock.sendall(b"a NOOP {4000+}\r\n" + b"x" * 4000 + b"\r\n")
        except OSError:
            pass
        sock.close()


def flood_commands(host: str, port: int, stop: threading.Event, **_) -> None:
    sock = socket.create_connection((host, port), timeout=30)
    threading.Thread(target=drain, args=(sock, stop), daemon=True).start()
    burst = b"n NOOP\r\n" * 20000
    try:
        while not stop.is_set():
            sock.sendall(burst)
    except OSError:
        pass
    sock.close()


def _logged_in(port: int) -> socket.socket:
    sock = connect(port)
    sock.sendall(f"l LOGIN {USER} {PASSWORD}\r\ns SELECT INBOX\r\n".encode())
    buf = b""
    while b"s OK" not in buf:
        buf += sock.recv(1 << 16)
    return sock


def huge_fetch(host: str, port: int, stop: threading.Event, uid: int = 1, **_) -> None:
    sock = _logged_in(port)
    threading.Thread(target=drain, args=(sock, stop), daemon=True).start()
    try:
        while not stop.is_set():
            sock.sendall(b"f UID FETCH %d BODY.PEEK[]\r\n" % uid)
            time.sleep(0.2)  # pacing the attacker's requests, not synchronising
    except OSError:
        pass
    sock.close()


def unread_fetch(host: str, port: int, stop: threading.Event, uid: int = 1, **_) -> None:
    sock = _logged_in(port)
    sock.sendall(b"f UID FETCH %d BODY.PEEK[]\r\n" % uid * 20)  # and never read: a slow reader
    stop.wait()
    sock.close()


def million_headers(host: str, port: int, stop: threading.Event, uid: int = 2, **_) -> None:
    sock = _logged_in(port)
    threading.Thread(target=drain, args=(sock, stop), daemon=True).start()
    try:
        while not stop.is_set():
            sock.sendall(b"e UID FETCH %d (ENVELOPE BODYSTRUCTURE)\r\n" % uid)
            time.sleep(0.1)
    except OSError:
        pass
    sock.close()


def measure(attack, host, port, user, password, seconds: float, **kw) -> list[float]:
    stop = threading.Event()
    result: list[float] = []
    victim = threading.Thread(target=lambda: result.extend(victim_noops(host, port, user, password, stop)))
    attacker = threading.Thread(target=attack, args=(host, port, stop), kwargs=kw, daemon=True)
    attacker.start()
    time.sleep(0.3)  # the attack is under way
    victim.start()
    time.sleep(seconds)
    stop.set()
    victim.join(120)
    attacker.join(10)
    return result


def summary(times: list[float]) -> str:
    if not times:
        return "no NOOP answered"
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"n={len(times):5d} p50 {statistics.median(ordered):6.2f} ms  p99 {p99:7.2f} ms  max {ordered[-1]:7.1f} ms"


def fairness(seconds: float, peer: bool) -> None:
    print("== fairness: another session's NOOP while one connection attacks (goal: p99 < 50 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        server, config = start(Path(tmp))
        try:
            store = MailStore(config.data_dir)
            big = b"Subject: huge\n\n" + (b"z" * 76 + b"\n") * (50 * MIB // 77)
            store.deliver(USER, big)  # uid 1: 50 MB
            headers = b"".join(b"X-H-%d: v\n" % i for i in range(1_000_000))
            store.deliver(USER, b"From: a@lab.test\n" + headers + b"Subject: s\n\nbody\n")  # uid 2: ~13 MB
            port = config.settings.ports.imap
            attacks = [("literal flood (pre-login)", flood_literals, True), ("command flood (pre-login)", flood_commands, True),
                       ("huge FETCH (50 MB, read)", huge_fetch, False), ("FETCH never read (slow reader)", unread_fetch, False),
                       ("ENVELOPE, 1,000,000 header lines", million_headers, False)]
            print(f"{'idle':34s} tuimail  {summary(measure(lambda *a, **k: None, '127.0.0.1', port, USER, PASSWORD, 1.0))}")
            for name, attack, both in attacks:
                ours = summary(measure(attack, "127.0.0.1", port, USER, PASSWORD, seconds))
                print(f"{name:34s} tuimail  {ours}")
                if both and peer:
                    try:
                        theirs = summary(measure(attack, *PEER, seconds))
                    except OSError as e:
                        theirs = f"not reachable ({e})"
                    print(f"{'':34s} Dovecot  {theirs}")
            print(f"RSS after the attacks: {rss(server.proc.pid) / MIB:.0f} MiB")
        finally:
            server.stop()


# ----- crash -----------------------------------------------------------------------------------

def crash(ops: int, seed: int) -> None:
    print(f"== crash: SIGKILL at random during {ops} mixed IMAP operations and POP3 QUITs")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(Path(tmp))
        Directory(config).add_account(USER, PASSWORD)
        box = MailStore(config.data_dir).mailbox(USER)
        for name in FOLDERS[1:]:
            box.create_folder(name)
        model, pending, problems, kills = Model(), None, [], 0
        kinds: dict[str, int] = {}
        ports = config.settings.ports
        started = time.monotonic()
        while model.acked < ops:
            server = Server(config.path)
            reconcile(model, scan(ports.imap, USER, PASSWORD, model, problems), pending, problems)
            worker = Worker(ports, USER, PASSWORD, model, random.Random(rng.random()), ops - model.acked,
                            rng.randrange(10, 120))
            worker.start()
            while not worker.in_flight.wait(0.2) and worker.is_alive():
                pass
            if worker.in_flight.is_set():
                server.kill()
                kills += 1
            worker.join(120)
            if worker.error is not None:
                problems.append(f"workload error: {worker.error!r}")
            pending = worker.pending if worker.in_flight.is_set() else None
            for kind, n in worker.counts.items():
                kinds[kind] = kinds.get(kind, 0) + n
            if not worker.in_flight.is_set():
                server.stop()
                break
        server = Server(config.path)
        reconcile(model, scan(ports.imap, USER, PASSWORD, model, problems), pending, problems)
        server.stop()
        count = {k: sum(1 for p in problems if p.startswith(k)) for k in ("lost", "two folders", "duplicate", "reused", "unexpected", "workload")}
        print(f"{model.acked} operations acknowledged ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
              f"{kills} SIGKILLs, {time.monotonic() - started:.0f} s")
        print(f"lost {count['lost']}, in two folders after a MOVE {count['two folders']}, duplicates {count['duplicate']}, "
              f"UIDs reused {count['reused']}, unexpected {count['unexpected']}   (goal: all 0)")
        for p in problems[:10]:
            print("  ", p)


# ----- fuzz ------------------------------------------------------------------------------------

SMTP_LINES = [b"HELO x", b"EHLO lab", b"MAIL FROM:<a@lab.test>", b"RCPT TO:<tester@lab.test>", b"RSET", b"NOOP",
              b"VRFY tester", b"AUTH PLAIN " + base64.b64encode(b"\0tester@lab.test\0x"), b"AUTH LOGIN", b"HELP"]
POP3_LINES = [b"USER tester@lab.test", b"PASS x", b"STAT", b"LIST", b"UIDL 1", b"TOP 1 0", b"RETR 1", b"DELE 1",
              b"RSET", b"NOOP", b"CAPA", b"AUTH PLAIN", b"APOP a b"]
IMAP_LINES = [b"a CAPABILITY", b"b NOOP", b"c LOGIN tester x", b"d SELECT INBOX", b"e FETCH 1:* (FLAGS ENVELOPE)",
              b"f SEARCH OR SEEN (NOT DELETED)", b"g LIST \"\" *", b"h ID (\"name\" \"x\")", b"i AUTHENTICATE PLAIN",
              b"j APPEND INBOX {3}", b"k STATUS INBOX (MESSAGES)", b"l UID FETCH 1 BODY[1.2.MIME]"]
SPICE = [b"\x00", b"\x1b[2J", b"\x07", b"\r", b"\xff\xfb\x01", b"\xff\xf4\xff\xfd\x06", b"{5}", b"{99999999+}", b"(",
         b")", b"\"", b"%", b"*", b"\x08", b"\x7f", "ё€😀".encode(), b"\xc3\x28", b"x" * 1200, b"NOT " * 200]


def mutate(line: bytes, rng: random.Random, keep: int = 0) -> bytes:
    """A line with a few bytes flipped, inserted (SPICE) or deleted; the first `keep` bytes stay
    (aiosmtpd closes a session after 5 unknown verbs, so SMTP's verbs are kept to reach the parsers)."""
    data = bytearray(line)
    for _ in range(rng.randrange(0, 4)):
        at = rng.randrange(keep, len(data) + 1)
        kind = rng.randrange(4)
        if kind == 0 and at < len(data):
            data[at] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = rng.choice(SPICE)
        elif kind == 2:
            del data[at:at + rng.randrange(1, 6)]
        else:
            data[at:at] = b" "
    return bytes(data).replace(b"\n", b" ") + (b"\r\n" if rng.random() < 0.8 else b"\n")


def fuzz_protocol(port: int, lines: list[bytes], count: int, rng: random.Random,
                  per_connection: int = 100, keep: int = 0) -> tuple[int, int]:
    """Sends `count` mutated lines, `per_connection` to a connection; returns (sent, reply lines)."""
    sent, replies = 0, [0]
    while sent < count:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            continue
        stop = threading.Event()
        reader = threading.Thread(target=drain, args=(sock, stop, replies), daemon=True)
        reader.start()
        batch = b"".join(mutate(rng.choice(lines), rng, keep) for _ in range(per_connection))
        try:
            if keep:  # aiosmtpd drops what is queued at a half-close: end with QUIT and wait instead
                sock.sendall(batch + b"QUIT\r\n")
            else:
                sock.sendall(batch)
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reader.join(30)
        stop.set()
        sock.close()
        sent += per_connection
    return sent, replies[0]


def tls_probes(config) -> int:
    ports = config.settings.ports
    probes = 0
    targets = [("smtp", ports.smtp), ("imap", ports.imap), ("pop3", ports.pop3), (None, ports.imaps),
               (None, ports.pop3s), (None, ports.smtps)]
    variants = [["-tls1"], ["-tls1_1"], ["-tls1_2", "-cipher", "NULL:eNULL"], ["-tls1_2", "-cipher", "EXP:RC4:DES"],
                ["-tls1_2", "-cipher", "aNULL"], ["-tls1_2"], ["-tls1_3"]]
    for starttls, port in targets:
        for variant in variants:
            args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *variant]
            if starttls:
                args += ["-starttls", starttls]
            subprocess.run(args, input=b"", capture_output=True, timeout=30)
            probes += 1
        if starttls:  # garbage instead of a ClientHello
            sock = connect(port)
            command = {"smtp": b"EHLO x\r\nSTARTTLS\r\n", "imap": b"a STARTTLS\r\n", "pop3": b"STLS\r\n"}[starttls]
            sock.sendall(command)
            time.sleep(0.2)
            try:
                sock.sendall(b"\x16\x03\x01\x00\x05hello" + os.urandom(2000))
                sock.recv(100)
            except OSError:
                pass
            sock.close()
            probes += 1
    return probes


def fuzz(lines: int, seed: int, protocols: set[str]) -> None:
    print(f"== fuzz: {lines} mutated lines per protocol, then TLS probes on every endpoint")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        server, config = start(Path(tmp), max_bad_commands=1_000_000, auth_max_delay=0.0, auth_failures_before_block=0,
                               max_connections_per_ip=500)
        try:
            ports = config.settings.ports
            started = time.monotonic()
            sent = {name: fuzz_protocol(port, pool, lines, rng, keep=keep)
                    for name, port, pool, keep in (("SMTP", ports.smtp, SMTP_LINES, 4), ("POP3", ports.pop3, POP3_LINES, 0),
                                                   ("IMAP", ports.imap, IMAP_LINES, 0))
                    if name in protocols}
            probes = tls_probes(config)
            elapsed = time.monotonic() - started
        finally:
            server.stop()
        logs = "".join(p.read_text(errors="replace") for p in config.log_dir.glob("*.log*"))
        stderr = "".join(server.lines)
        tracebacks = logs.count("Traceback") + stderr.count("Traceback")
        internal = logs.count("internal error") + logs.count("SERVERBUG")
        failed_tls = logs.count("TLS negotiation failed")
        print(f"lines sent (reply lines read): {', '.join(f'{k} {v[0]} ({v[1]})' for k, v in sent.items())}; {probes} TLS probes "
              f"({failed_tls} failed handshakes logged as one line each); {elapsed:.0f} s")
        print(f"tracebacks in the logs and on stderr: {tracebacks}; internal errors: {internal}   (goal: 0 and 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="memory,fairness,crash,fuzz")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each fairness attack")
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--protocols", default="SMTP,POP3,IMAP", help="which protocols the fuzz section sends to")
    parser.add_argument("--no-peer", action="store_true", help="skip the Dovecot comparison")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(time.strftime("bench/hostile.py, %Y-%m-%d %H:%M UTC", time.gmtime()), f"({os.cpu_count()} cores)")
    if "memory" in only:
        memory()
    if "fairness" in only:
        fairness(args.seconds, not args.no_peer)
    if "crash" in only:
        crash(args.ops, args.seed)
    if "fuzz" in only:
        fuzz(args.lines, args.seed, set(args.protocols.split(",")))


if __name__ == "__main__":
    main()
