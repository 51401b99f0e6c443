"""SMTP intake: N messages of S bytes over C concurrent connections to `tuimail serve` on loopback.

Prints messages/s and checks that every message is on disk, whole. Each message is its own SMTP
session (connect, EHLO, MAIL, RCPT, DATA, QUIT) unless --per-connection is larger than 1; MAIL, RCPT
and DATA are pipelined (RFC 2920) as real MTAs do.

    python bench/smtp_intake.py --messages 5000 --concurrency 20 --size 1024
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _server import cpu_seconds, serve

RCPT = "bench@bench.test"


async def reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line


async def sender(port: int, jobs: asyncio.Queue, body: bytes, per_connection: int, done: list[int]) -> None:
    while not jobs.empty():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply(reader)
        writer.write(b"EHLO bench.client\r\n")
        await reply(reader)
        sent = 0
        while sent < per_connection and not jobs.empty():
            number = jobs.get_nowait()
            writer.write(b"MAIL FROM:<load@bench.client>\r\nRCPT TO:<" + RCPT.encode() + b">\r\nDATA\r\n")
            for expected in (b"250", b"250", b"354"):
                line = await reply(reader)
                assert line.startswith(expected), line
            writer.write(b"Subject: bench %d\r\n\r\n" % number + body + b".\r\n")
            line = await reply(reader)
            assert line.startswith(b"250"), line
            done.append(number)
            sent += 1
        writer.write(b"QUIT\r\n")
        await reply(reader)
        writer.close()
        await writer.wait_closed()


async def run(port: int, messages: int, concurrency: int, size: int, per_connection: int) -> float:
    line = b"x" * 70 + b"\r\n"
    body = line * max(1, size // len(line))
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for number in range(messages):
        jobs.put_nowait(number)
    done: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(sender(port, jobs, body, per_connection, done) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    assert len(done) == messages
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024, help="approximate body bytes")
    parser.add_argument("--per-connection", type=int, default=1, help="messages per SMTP session")
    args = parser.parse_args()
    if not (0 < args.messages <= 100_000 and 0 < args.concurrency <= 200):
        raise SystemExit("keep the load bounded: --messages <= 100000, --concurrency <= 200")
    with serve([RCPT]) as config:
        cpu_before = cpu_seconds(config.server_pid)
        elapsed = asyncio.run(run(config.settings.ports.smtp, args.messages, args.concurrency, args.size,
                                  args.per_connection))
        server_cpu = cpu_seconds(config.server_pid) - cpu_before
        new = config.data_dir / "bench.test" / "bench" / "new"
        files = list(new.iterdir())
        whole = sum(1 for f in files if f.read_bytes().rstrip().endswith(b"x" * 70))
    print(f"smtp_intake: {args.messages} messages of ~{args.size} B, {args.concurrency} connections, "
          f"{args.per_connection} message(s) per session")
    print(f"  {elapsed:.2f} s, {args.messages / elapsed:.0f} msgs/s accepted with durable delivery (fsync before 250)")
    print(f"  server CPU {server_cpu:.2f} s = {server_cpu / args.messages * 1000:.2f} ms per message "
          f"({server_cpu / elapsed:.0%} of one core)")
    print(f"  on disk: {len(files)} files, {whole} whole" + ("" if whole == args.messages else "  <-- MISMATCH"))


if __name__ == "__main__":
    main()
