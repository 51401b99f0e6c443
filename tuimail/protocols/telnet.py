"""Telnet on the wire (RFC 854, RFC 855 options, RFC 856 TRANSMIT-BINARY, RFC 860 TIMING-MARK), sans-I/O.

Students type SMTP, POP3 and IMAP into Debian's `telnet` (GNU inetutils 2.4). `TelnetFilter` sits in
front of every protocol parser, once per connection: it takes the bytes the client sent and returns
`(clean data, bytes to send back)`. Telnet commands never reach a parser, a stored message or a log.

    f = TelnetFilter()
    data, answer = f.receive(b"helo \\xd0\\x9f\\xd0\\xb5\\xd1\\x82\\xd1\\x80\\xd1\\xff\\xf4\\xff\\xfd\\x06\\xd1\\xd0\\xb0\\r\\n")
    # data   == "helo Петруха\\r\\n".encode()   (IAC IP stood for the 0x83 of "у", and the 0x85 of "х"
    #                                            that the client swallowed is put back)
    # answer == IAC DO BINARY, IAC WILL BINARY (the 8-bit offer), IAC WILL TIMING-MARK

What the real client does (found by running /usr/bin/telnet in a pty against a raw capture server on
127.0.0.1 and typing every byte 0x80-0xBF after a D0 lead byte, then the same after agreeing BINARY;
`scripts/telnet_capture.py` repeats the experiment):
- In its default mode (NVT, not binary) the client compares the low 7 bits of each typed byte with its
  special characters (`strip()` in inetutils' telnet.c). A UTF-8 continuation byte whose low 7 bits
  are one of them is turned into a telnet command followed by `IAC DO TIMING-MARK`, and the client
  then throws away everything the server sends until the mark is answered. `CONTROL_BYTES` below is
  the exact table that was captured:
      0x83 -> IAC IP    (^C, intr)     "у" D1 83 (and "Ѓ" D0 83); Ctrl+C itself sends the same
      0x8F -> IAC AO    (^O, flush)    "я" D1 8F, "Џ"
      0x9A -> IAC SUSP  (^Z, susp)     "К" D0 9A
      0x9C -> IAC BRK   (^\\, quit)     "М" D0 9C
  Two more bytes never arrive as sent:
      0x85 (^E, the client's echo toggle): dropped, and local echo is switched off ("х" D1 85).
      0x9D (^], the client's escape character): the client opens its own `telnet>` prompt, which eats
           the rest of the line ("Н" D0 9D). Nothing reaches the server, so nothing can be repaired;
           it only happens before binary mode is on (see README, "Russian in Linux telnet").
  Every other byte 0x80-0xBF arrived unchanged. Enter sends CR LF.
- Once TRANSMIT-BINARY is agreed in the client's sending direction (it said WILL BINARY), it compares
  the full byte: every byte 0x80-0xBF arrives unchanged, Enter sends a bare LF, and the server's
  WILL BINARY (a mode negotiation) switches the local echo back on if 0x85 had turned it off. Ctrl+C
  still sends `IAC IP IAC DO TIMING-MARK` (a real interrupt, at the start of a line: the terminal
  has already discarded what was typed).
So the filter restores a command that arrives exactly where a UTF-8 continuation byte is due (and a
dropped 0x85 when a non-continuation byte arrives there from a telnet client before binary mode), and
offers BINARY both ways as soon as the client has shown it speaks telnet.

Rules kept here:
- Never send IAC to a client that has not sent a telnet command (smtplib and every real mail client
  would take it for a reply). Before the first command, an 0xFF byte counts as telnet only in a form
  8-bit text does not produce: `IAC WILL|WONT|DO|DONT <opt>`, `IAC SB`, or a one-byte command directly
  followed by another IAC (the client's `IAC IP IAC DO TM`). So a windows-1251 "ясно" (FF F1 ...) in
  a message from a real client passes untouched.
- IAC IAC is a literal 0xFF (RFC 854 p.14). A lone IAC at the end of a read is kept for the next one.
- Options (RFC 855): BINARY is agreed; DO TIMING-MARK gets WILL TIMING-MARK (RFC 860), once per read;
  any other option is refused once (WONT / DONT) and then ignored; a state is only answered when it
  changes (RFC 854 p.3: no loops). A storm of thousands of sequences costs one pass and a few bytes.
- IAC AYT gets a short line; IAC EC / IAC EL erase a character / the line being typed; IAC IP (a real
  Ctrl+C) drops the line being typed. For that the filter holds a telnet client's unfinished line
  (it types whole lines anyway) until its LF, up to `HOLD_LIMIT` bytes.
"""

from __future__ import annotations

IAC, DONT, DO, WONT, WILL, SB = 255, 254, 253, 252, 251, 250
GA, EL, EC, AYT, AO, IP, BRK, DM, NOP, SE = 249, 248, 247, 246, 245, 244, 243, 242, 241, 240
EOR, ABORT, SUSP, EOF = 239, 238, 237, 236
BINARY, ECHO, SGA, TM = 0, 1, 3, 6
FIRST_COMMAND = EOF  # RFC 854 commands are 240-254; RFC 885 EOR and RFC 1184 EOF/SUSP/ABORT below them

# Captured from Debian's telnet (inetutils 2.4), default mode: the command a continuation byte became.
CONTROL_BYTES = {IP: 0x83, AO: 0x8F, SUSP: 0x9A, BRK: 0x9C}
ECHO_TOGGLE_BYTE = 0x85  # dropped by the client (its echo-toggle character ^E, compared on 7 bits)

AYT_ANSWER = b"\r\n[tuimail: yes, the server is here]\r\n"
HOLD_LIMIT = 16384  # a telnet client's unfinished line held for EC / EL / IP; longer lines pass on
SB_LIMIT = 256  # subnegotiation bytes skipped before giving up on the IAC SE (we agree no SB option)
BINARY_CHANGES = 4  # BINARY may change state this many times per direction; then it is left as it is

_DATA, _IAC, _OPTION, _PROBE, _SB, _SB_IAC = range(6)


class TelnetFilter:
    """One connection's telnet layer: `receive(bytes) -> (clean bytes, answer bytes)`."""

    def __init__(self) -> None:
        self.telnet = False  # the client has sent a telnet command: answers and offers may go out
        self.binary_in = False  # RFC 856: the client sends binary (it said WILL BINARY)
        self.binary_out = False  # we send binary (it said DO BINARY)
        self._want_in = self._want_out = False  # our DO / WILL BINARY is out, unanswered
        self._changes = {WILL: 0, DO: 0}
        self._refused: set[tuple[int, int]] = set()  # (verb, option) already answered with WONT/DONT
        self._state = _DATA
        self._verb = 0
        self._probe = 0  # a one-byte command seen before `telnet`, waiting to see if IAC follows
        self._sb = 0
        self._held = bytearray()  # a telnet client's unfinished line
        self._overflow = False  # the current line outgrew HOLD_LIMIT and is passed on as it comes
        self._due = 0  # UTF-8 continuation bytes still due after the last clean byte
        self._notes: list[str] = []
        self.restored = 0  # bytes repaired so far (for the session's note)
        self._interrupts = 0  # IAC IP in the current read

    # ----- interface ------------------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Part of a line is held here (the connection's command timer should run)."""
        return bool(self._held) or self._state != _DATA

    def take_notes(self) -> list[str]:
        """What happened at the telnet level, for the session log (plain text, no telnet bytes)."""
        notes, self._notes = self._notes, []
        return notes

    def escape(self, data: bytes) -> bytes:
        """Server output to a telnet client: a data 0xFF byte is sent as IAC IAC (RFC 854)."""
        return data.replace(b"\xff", b"\xff\xff") if self.telnet and IAC in data else data

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        if not self.telnet and self._state == _DATA and IAC not in data:
            self._due = _due_after(data, self._due)  # the common case: a mail client, a plain line
            return data, b""
        out = self._held
        self._held = bytearray()
        answer = bytearray()
        tm_answered = ayt_answered = False
        restored, self._interrupts = self.restored, 0
        for b in data:
            state = self._state
            if state == _DATA:
                if b == IAC:
                    self._state = _IAC
                else:
                    self._append(out, b)
            elif state == _IAC:
                self._state = _DATA
                if b == IAC:  # RFC 854: IAC IAC is a data byte 255
                    self._append(out, IAC)
                elif b in (WILL, WONT, DO, DONT):
                    self._verb, self._state = b, _OPTION
                    self._spoke(answer)
                elif b == SB:
                    self._sb, self._state = 0, _SB
                    self._spoke(answer)
                elif b < FIRST_COMMAND:  # not a command: 8-bit data that happens to hold 0xFF
                    self._append(out, IAC)
                    self._append(out, b)
                elif not self.telnet:
                    self._probe, self._state = b, _PROBE
                else:
                    ayt_answered = self._command(b, out, answer, ayt_answered)
            elif state == _PROBE:  # `IAC <command>` from a client not yet known to speak telnet
                if b == IAC:
                    self._spoke(answer)
                    ayt_answered = self._command(self._probe, out, answer, ayt_answered)
                    self._state = _IAC
                else:
                    self._state = _DATA
                    for byte in (IAC, self._probe, b):
                        self._append(out, byte)
            elif state == _OPTION:
                self._state = _DATA
                if self._verb == DO and b == TM:
                    if not tm_answered:  # RFC 860: answer the mark where it arrived (once per read)
                        answer += bytes((IAC, WILL, TM))
                        tm_answered = True
                else:
                    self._negotiate(self._verb, b, answer)
            elif state == _SB:
                self._sb += 1
                if b == IAC:
                    self._state = _SB_IAC
                elif self._sb > SB_LIMIT:
                    self._state = _DATA
            else:  # _SB_IAC
                self._state = _DATA if b == SE else _SB
        if self._interrupts:  # one note per read, however many: a storm must not flood the log
            self._notes.append("Telnet: interrupt (Ctrl+C); the line being typed was dropped")
        if self.restored != restored:
            self._notes.append(
                f"Telnet: restored {self.restored - restored} byte(s) of UTF-8 text the client had sent as telnet commands"
            )
        return self._release(out), bytes(answer)

    # ----- internals ------------------------------------------------------------------------

    def _spoke(self, answer: bytearray) -> None:
        """The first telnet command: from now on answers may be sent; offer 8-bit mode both ways."""
        if self.telnet:
            return
        self.telnet = True
        self._want_in = self._want_out = True
        answer += bytes((IAC, DO, BINARY, IAC, WILL, BINARY))  # RFC 856
        self._notes.append("Telnet client: offered 8-bit (TRANSMIT-BINARY) mode")

    def _command(self, cmd: int, out: bytearray, answer: bytearray, ayt_answered: bool) -> bool:
        if self._due and cmd in CONTROL_BYTES:  # the client turned a continuation byte into this
            self._append(out, CONTROL_BYTES[cmd])
            self.restored += 1
        elif cmd == IP:  # a real Ctrl+C: the line being typed is dropped
            self._erase_line(out)
            self._interrupts += 1
        elif cmd == EC:  # RFC 854: erase the last character, as backspace does
            _erase_char(out, self._line_start(out))
            self._due = 0
        elif cmd == EL:
            self._erase_line(out)
        elif cmd == AYT and not ayt_answered:
            answer += AYT_ANSWER
            return True
        return ayt_answered  # NOP, DM, GA, BRK, AO, SUSP, EOF, ABORT, EOR: nothing to do

    def _negotiate(self, verb: int, option: int, answer: bytearray) -> None:
        """RFC 854/855 option negotiation; an answer only when a state changes (never a loop)."""
        if option == BINARY:
            direction = WILL if verb in (WILL, WONT) else DO  # WILL/WONT: the client's sending side
            on = verb in (WILL, DO)
            current = self.binary_in if direction == WILL else self.binary_out
            asked = self._want_in if direction == WILL else self._want_out
            if on == current or self._changes[direction] >= BINARY_CHANGES:
                if direction == WILL:  # a refusal of our offer, or a repeat: nothing to answer
                    self._want_in = False
                else:
                    self._want_out = False
                return
            self._changes[direction] += 1
            if not asked:  # the client proposes: agree (on) or acknowledge (off)
                reply = (DO if on else DONT) if direction == WILL else (WILL if on else WONT)
                answer += bytes((IAC, reply, BINARY))
            if direction == WILL:
                self.binary_in, self._want_in = on, False
            else:
                self.binary_out, self._want_out = on, False
            if on:
                self._notes.append(f"Telnet client: 8-bit mode on ({'client to server' if direction == WILL else 'server to client'})")
            return
        if verb in (WILL, DO) and (verb, option) not in self._refused:
            self._refused.add((verb, option))  # RFC 854: refuse an option we do not support, once
            answer += bytes((IAC, DONT if verb == WILL else WONT, option))

    def _append(self, out: bytearray, b: int) -> None:
        if self._due and b & 0xC0 != 0x80 and self._due == 1 and self.telnet and not self.binary_in and b != 0:
            out.append(ECHO_TOGGLE_BYTE)  # the client dropped its echo-toggle byte here: put it back
            self.restored += 1
        if b == 0 and out and out[-1] == 0x0D and self.telnet and not self.binary_in:
            return  # RFC 854: CR NUL is a bare CR in NVT mode
        out.append(b)
        if b & 0xC0 == 0x80:
            self._due = max(0, self._due - 1)
        else:
            self._due = _needs(b)

    def _line_start(self, out: bytearray) -> int:
        return out.rfind(b"\n") + 1

    def _erase_line(self, out: bytearray) -> None:
        del out[self._line_start(out):]
        self._due = 0

    def _release(self, out: bytearray) -> bytes:
        """Pass on complete lines; hold a telnet client's unfinished line (for EC, EL and IP)."""
        if not self.telnet:
            return bytes(out)
        cut = out.rfind(b"\n") + 1
        if cut:
            self._overflow = False
        if self._overflow or len(out) - cut > HOLD_LIMIT:
            self._overflow = True
            return bytes(out)
        self._held = out[cut:]
        return bytes(out[:cut])


def _needs(lead: int) -> int:
    """Continuation bytes a UTF-8 lead byte announces (0 for ASCII and invalid bytes)."""
    if 0xC2 <= lead <= 0xDF:
        return 1
    if 0xE0 <= lead <= 0xEF:
        return 2
    if 0xF0 <= lead <= 0xF4:
        return 3
    return 0


def _due_after(data: bytes, due: int) -> int:
    """The continuation bytes still due after `data`, from its last few bytes."""
    if not data:
        return due
    if data[-1] < 0x80:  # a line end, as almost every read ends: nothing is due
        return 0
    tail = data[-4:]
    for i in range(len(tail) - 1, -1, -1):
        if tail[i] & 0xC0 != 0x80:
            return max(0, _needs(tail[i]) - (len(tail) - 1 - i))
    return max(0, due - len(tail)) if len(data) <= 4 else 0


def _erase_char(out: bytearray, start: int) -> None:
    """Remove the last character (all of its UTF-8 bytes) after `start`."""
    while len(out) > start and out[-1] & 0xC0 == 0x80:
        out.pop()
    if len(out) > start:
        out.pop()
