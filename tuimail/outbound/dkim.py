"""DKIM signing of outbound mail (RFC 6376) with dkimpy, one RSA key per hosted domain.

Keys are made on first use (`tuimail domain dkim NAME` or the first message from the domain) with
`cryptography`, 2048-bit RSA, and kept in `<data_dir>/dkim/<domain>.pem` (mode 0600). The public half
is published as a TXT record at `<selector>._domainkey.<domain>` (`txt_record`). A message is signed
when its From: address is in a hosted domain, over the headers RFC 6376 §5.4.1 recommends, with
relaxed/relaxed canonicalisation (survives header folding by relays).
"""

from __future__ import annotations

import base64
import re
import threading
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tuimail.core.atomic import atomic_write

KEY_DIR = "dkim"
SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to",
                  b"references", b"mime-version", b"content-type", b"content-transfer-encoding"]
_FROM = re.compile(rb"(?im)^from[ \t]*:(.*(?:\r?\n[ \t].*)*)")
_ADDRESS = re.compile(rb"[\w.+=-]+@([\w-]+(?:\.[\w-]+)+)")


class DkimKeys:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / KEY_DIR
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}

    def key_path(self, domain: str) -> Path:
        return self.root / f"{domain.lower()}.pem"

    def private_key(self, domain: str) -> bytes:
        """The domain's key in PEM, made (and stored 0600) the first time it is asked for."""
        domain = domain.lower()
        with self._lock:
            if domain in self._cache:
                return self._cache[domain]
            path = self.key_path(domain)
            try:
                pem = path.read_bytes()
            except FileNotFoundError:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
                self.root.mkdir(parents=True, exist_ok=True)
                self.root.chmod(0o700)
                atomic_write(path, pem, mode=0o600)
            self._cache[domain] = pem
            return pem

    def txt_record(self, domain: str) -> str:
        """`v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>` (RFC 6376 §3.6.1)."""
        key = serialization.load_pem_private_key(self.private_key(domain), password=None)
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

    def sign(self, message_lf: bytes, domain: str, selector: str) -> bytes:
        """The DKIM-Signature header (LF line ends) for a message; blocking (RSA)."""
        crlf = message_lf.replace(b"\n", b"\r\n")
        header = dkim.sign(crlf, selector.encode(), domain.encode(), self.private_key(domain),
                           canonicalize=(b"relaxed", b"relaxed"), include_headers=SIGNED_HEADERS)
        return header.replace(b"\r\n", b"\n")


def from_domain(message: bytes) -> str | None:
    """The domain of the From: header's address (RFC 5322 §3.6.2), lower case."""
    end = re.search(rb"\r?\n\r?\n", message)
    m = _FROM.search(message[: end.start()] if end else message)
    if not m:
        return None
    address = _ADDRESS.search(m.group(1))
    return address.group(1).decode("ascii", "replace").lower() if address else None


def quote_txt(record: str) -> str:
    """A TXT value as zone files and DNS panels want it: quoted strings of at most 255 bytes."""
    return " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))
