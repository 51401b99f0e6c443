"""What Debian's telnet (inetutils) really sends for the UTF-8 continuation bytes 0x80-0xBF.

Runs /usr/bin/telnet in a pseudo-terminal (with it as the controlling terminal, so Ctrl+C is a real
signal) against a raw capture server on 127.0.0.1, types `D0 <byte> x Enter` for every byte, and
prints each one that does not arrive as typed. `--binary` first agrees TRANSMIT-BINARY (RFC 856) both
ways. The table in tuimail/protocols/telnet.py (CONTROL_BYTES) came from this script:

    python scripts/telnet_capture.py            # the client's default mode
    python scripts/telnet_capture.py --binary   # after 8-bit mode is agreed: every byte arrives
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import socket
import subprocess
import sys
import termios
import time


def main() -> None:
    binary = "--binary" in sys.argv
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    master, slave = pty.openpty()
    client = subprocess.Popen(
        ["/usr/bin/telnet", "127.0.0.1", str(port)], stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        env={"TERM": "dumb", "LANG": "C.UTF-8", "HOME": "/nonexistent"},
    )
    os.close(slave)
    conn, _ = server.accept()
    conn.settimeout(0.02)

    def pump(seconds: float) -> tuple[bytes, bytes]:
        """What reached the server, and what the terminal showed, within `seconds`."""
        end, got, screen = time.monotonic() + seconds, bytearray(), bytearray()
        while time.monotonic() < end:
            if select.select([master], [], [], 0.01)[0]:
                screen += os.read(master, 4096)
            try:
                got += conn.recv(4096)
            except socket.timeout:
                pass
        return bytes(got), bytes(screen)

    conn.sendall(b"220 capture\r\n")
    pump(0.5)
    if binary:
        conn.sendall(b"\xff\xfd\x00\xff\xfb\x00")  # IAC DO BINARY, IAC WILL BINARY
        print("negotiation:", pump(0.5)[0].hex(" "))
    enter = b"\n" if binary else b"\r\n"
    for byte in range(0x80, 0xC0):
        os.write(master, bytes((0xD0, byte)) + b"x\r")
        got, screen = pump(0.3)
        if b"\xff\xfd\x06" in got:  # answer the timing mark, or the client shows nothing more
            conn.sendall(b"\xff\xfb\x06")
        note = ""
        if b"telnet>" in screen:  # the client's own prompt: Enter goes back to the session
            os.write(master, b"\r")
            got += pump(0.3)[0]
            note = " (the client opened its telnet> prompt; the rest of the line never left it)"
        if got != bytes((0xD0, byte)) + b"x" + enter:
            print(f"D0 {byte:02X} -> {got.hex(' ')}{note}")
    os.write(master, b"\x03")
    print("Ctrl+C ->", pump(0.5)[0].hex(" "))
    client.kill()
    client.wait()


if __name__ == "__main__":
    main()
