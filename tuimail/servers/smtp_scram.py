"""SMTP AUTH SCRAM-SHA-256 (RFC 4954 with RFC 5802, RFC 7677) for `TuimailSMTP`, over the sans-I/O
exchange in `core/scram.py`:

    C: AUTH SCRAM-SHA-256 [client-first]      S: 334 (empty, when no initial response)
    C: client-first                            S: 334 server-first
    C: client-final                            (the proof goes to the directory and the login guard)
    S: 334 server-final (v=...)                C: (empty line)
    S: 235 2.7.0 Authentication successful

RFC 4954 §4: 235 carries no data, so the server-final is a last challenge, as Postfix (Cyrus SASL)
sends it. A malformed message or a wrong nonce gets `501 5.5.2` naming the problem; a wrong proof is
`535 5.7.8` like a wrong password, counted by the guard. The 334 challenges are masked in the log.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from aiosmtpd.smtp import AuthResult

from tuimail.core import scram

if TYPE_CHECKING:
    from tuimail.servers.smtp import TuimailSMTP


async def authenticate(server: TuimailSMTP, args: list[str]) -> AuthResult:
    """aiosmtpd's `auth_SCRAM-SHA-256` method: `args` is the AUTH line's words after AUTH."""
    handled = AuthResult(success=False, handled=True)  # the reply is already sent
    exchange = scram.Exchange(server.engine.directory.scram_verifier)
    server.masking_challenges = True
    try:
        if len(args) == 1:
            first = await server.challenge_auth("")
            if not isinstance(first, bytes):  # "*" or bad base64: aiosmtpd answered 501
                return handled
        else:
            try:
                first = base64.b64decode(args[1].encode(), validate=True) if args[1] != "=" else b""
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Cannot decode base64")
                return handled
        try:
            final = await server.challenge_auth(exchange.first(_text(first)))
            if not isinstance(final, bytes):
                return handled
            proof = exchange.final(_text(final))
        except scram.ScramError as e:
            if server.record:
                server.record.note(f"SCRAM-SHA-256 exchange refused: {e}")
            await server.push(f"501 5.5.2 SCRAM-SHA-256: {e}")
            return handled

        async def confirm() -> bool:  # RFC 5802 §5: the client checks our signature, answers empty
            answer = await server.challenge_auth(proof.server_final)
            if isinstance(answer, bytes) and answer:
                await server.push("501 5.5.2 SCRAM-SHA-256: expected an empty response to the server-final message")
            return answer == b""

        return await server.verify(proof.login, proof, confirm)
    finally:
        server.masking_challenges = False


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise scram.ScramError("the response is not UTF-8") from None
