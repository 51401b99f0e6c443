"""The COMPRESS=DEFLATE layer (RFC 4978) between a connection's transport and its protocol.

After `COMPRESS DEFLATE` is answered OK, both directions are raw DEFLATE (RFC 1951: zlib with no
header, wbits=-15). Each server write is compressed and ends with a sync flush (§4: the client can
decode every response as soon as it arrives). Client bytes are inflated in pieces of at most `PIECE`
octets, so a small compressed input that inflates hugely ("zip bomb") never sits in memory whole: the
command reader's own limits apply to each piece as it comes. Input that is not DEFLATE raises
`CompressionError`; the connection then ends the session with a BYE (never a traceback).

The session's byte counts stay wire bytes (what crossed the network); `raw_in` / `raw_out` count the
octets before compression, for the session's closing note.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

PIECE = 65536  # inflated octets handed on at a time


class CompressionError(Exception):
    """The client's compressed stream is not valid DEFLATE."""


class Deflate:
    def __init__(self, level: int = 6) -> None:
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._inflater = zlib.decompressobj(-15)
        self.raw_in = 0
        self.raw_out = 0

    def compress(self, data: bytes) -> bytes:
        """One server write, flushed so the client can decode all of it now (RFC 4978 §4)."""
        self.raw_out += len(data)
        return self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)

    def inflate(self, data: bytes) -> Iterator[bytes]:
        """The client's octets, decompressed, in pieces of at most PIECE octets."""
        pending = data
        while True:
            try:
                out = self._inflater.decompress(pending, PIECE)
            except zlib.error as e:
                raise CompressionError(str(e)) from None
            if self._inflater.unused_data:  # bytes after the end of the DEFLATE stream
                raise CompressionError("data after the end of the compressed stream")
            pending = self._inflater.unconsumed_tail
            if out:
                self.raw_in += len(out)
                yield out
            if not pending and len(out) < PIECE:  # a full piece may leave output inside zlib: go on
                return
