"""How long MessageStructure takes on big and hostile messages; prints one line per case.

    .venv/bin/python bench/imap_structure.py
"""

from __future__ import annotations

import base64
import random
import time

from tuimail.protocols.imap.structure import MessageStructure


def attachments_1mb() -> bytes:
    rnd = random.Random(1)
    head = (b"From: Bench <bench@lab.test>\nTo: tatareva@lab.test\nSubject: big\n"
            b"Date: Thu, 26 Nov 2026 10:00:00 +0300\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="==big=="\n\n')
    parts = [b"Content-Type: text/plain; charset=utf-8\n\n" + b"Some text for the body.\n" * 200]
    for i in range(6):
        blob = rnd.randbytes(120_000)
        enc = base64.encodebytes(blob)
        parts.append(b'Content-Type: application/octet-stream; name="f%d.bin"\n'
                     b'Content-Disposition: attachment; filename="f%d.bin"\n'
                     b"Content-Transfer-Encoding: base64\n\n" % (i, i) + enc.rstrip(b"\n"))
    inner = (b"From: x@y\nSubject: fwd\nContent-Type: multipart/alternative; boundary=in\n\n"
             b"--in\nContent-Type: text/plain\n\nplain\n--in\nContent-Type: text/html\n\n<p>html</p>\n--in--\n")
    parts.append(b"Content-Type: message/rfc822\n\n" + inner)
    return head + b"".join(b"--==big==\n" + p + b"\n" for p in parts) + b"--==big==--\n"


CASES = {
    "1 MB, 6 base64 attachments + rfc822": attachments_1mb(),
    "1 MB of empty parts (part limit)": b'Content-Type: multipart/mixed; boundary="b"\n\n' + b"--b\n" * 262_144,
    "200-deep nesting (depth limit)": b"".join(
        b'Content-Type: multipart/mixed; boundary="%d"\n\n--%d\n' % (i, i) for i in range(200)) + b"\nx\n",
    "1 MB header, 20k fields": b"".join(b"X-Field-%d: %s\n" % (i, b"v" * 40) for i in range(20_000)) + b"\nbody\n",
    "1 MB binary junk": random.Random(2).randbytes(1 << 20),
}


def timed(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main() -> None:
    for name, raw in CASES.items():
        parse = timed(lambda raw=raw: MessageStructure.parse(raw))
        full = timed(lambda raw=raw: (lambda m: (m.bodystructure(), m.envelope(), m.section(())))(
            MessageStructure.parse(raw)))
        ms = MessageStructure.parse(raw)
        print(f"{name:40s} {len(raw) / 1e6:5.2f} MB  parse {parse:7.2f} ms  "
              f"parse+BODYSTRUCTURE+ENVELOPE+BODY[] {full:7.2f} ms  "
              f"BODYSTRUCTURE {len(ms.bodystructure())} bytes")


if __name__ == "__main__":
    main()
