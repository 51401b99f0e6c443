"""AUTHENTICATE SCRAM-SHA-256 for the IMAP machine (RFC 9051 §6.2.2 and Appendix E item 27, RFC 5802,
RFC 7677; SASL-IR RFC 4959), over the sans-I/O exchange in `core/scram.py`.

    C: a AUTHENTICATE SCRAM-SHA-256 [client-first, base64]   (or "+ " then client-first)
    S: + server-first                  C: client-final
       (the proof goes to the directory and the login guard as an `AuthRequest`)
    S: + server-final (v=...)          C: (empty line)
    S: a OK

A malformed message or a wrong nonce ends the exchange with BAD naming the problem; a wrong proof is
a failed login like a wrong password. The server's challenges are masked in the log like the
client's answers: they carry the salt and the server's signature.
"""

from __future__ import annotations

from tuimail.core import scram
from tuimail.core.masking import MASK

MASKED = (f"+ {MASK}",)


class ScramSasl:
    """Mixed into `ImapMachine`; uses its `_sasl`, `_raw`, `_request_auth` and `options`."""

    def _scram_offered(self) -> bool:
        return self.options.scram_verifier is not None

    def _scram_challenge(self, message: str) -> None:
        self._raw(f"+ {scram.encode(message)}\r\n".encode("ascii"), log=MASKED)

    def _scram_answer(self, sasl, data: bytes) -> str | None:
        """One client response (already checked for "*" and base64) in a SCRAM exchange."""
        exchange = sasl.exchange
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            self._sasl = None
            return "BAD SCRAM-SHA-256: the response is not UTF-8"
        if sasl.address is not None:  # RFC 5802 §5: the client has checked our signature
            self._sasl = None
            if message:
                return "BAD SCRAM-SHA-256: expected an empty response to the server-final message"
            return self._logged_in(sasl.address, "AUTHENTICATE")
        try:
            if exchange.login is None:
                self._scram_challenge(exchange.first(message))
                return None
            proof = exchange.final(message)
        except scram.ScramError as e:
            self._sasl = None
            self._out.notes.append(f"SCRAM-SHA-256 exchange refused: {e}")
            return f"BAD SCRAM-SHA-256: {e}"
        sasl.proof = proof
        return self._request_auth(sasl.tag, proof.login, proof, scram.MECHANISM)

    def _scram_accepted(self, address: str) -> bool:
        """The directory accepted the proof: send the server-final and wait for the empty line.
        False when the pending login is not a SCRAM one."""
        sasl = self._sasl
        if sasl is None or sasl.proof is None:
            return False
        sasl.address = address
        self._scram_challenge(sasl.proof.server_final)
        return True
