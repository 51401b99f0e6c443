"""TLS material: the server's SSL context, from `[tls] cert`/`key` or a self-signed certificate made
at first start (RFC 8314 for implicit TLS; RFC 3207 / 2595 / 3501 for STARTTLS and STLS).

The generated certificate names the hostname, every hosted domain, `localhost` and 127.0.0.1, lives
in `<data_dir>/tls/` with the key at mode 0600, and is regenerated when a domain is added. TLS 1.2 is
the minimum.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from tuimail.config import Config
from tuimail.core.atomic import atomic_write

GENERATED_DIR = "tls"


class TlsError(Exception):
    """The configured certificate or key cannot be used; the message says which and why."""


def certificate_paths(config: Config) -> tuple[Path, Path, bool]:
    """(cert, key, generated?) for this config."""
    tls = config.settings.tls
    if tls.cert or tls.key:
        if not (tls.cert and tls.key):
            raise TlsError("[tls] needs both cert and key (or neither, for a generated certificate)")
        return config.resolve(tls.cert), config.resolve(tls.key), False
    folder = config.data_dir / GENERATED_DIR
    return folder / "cert.pem", folder / "key.pem", True


def server_context(config: Config) -> ssl.SSLContext:
    """An SSL context for the listeners; generates the self-signed pair when needed. Blocking."""
    cert, key, generated = certificate_paths(config)
    names = wanted_names(config)
    if generated and (not cert.exists() or not key.exists() or not _covers(cert, names)):
        generate_self_signed(cert, key, names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as e:
        raise TlsError(f"[tls]: {e.filename}: no such file") from None
    except (ssl.SSLError, OSError) as e:
        raise TlsError(f"[tls]: cannot use {cert} / {key}: {e}") from None
    return context


def wanted_names(config: Config) -> list[str]:
    names = [config.settings.server.hostname, *(d.name for d in config.settings.domains), "localhost"]
    return list(dict.fromkeys(names))


def _covers(cert_path: Path, names: list[str]) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound, OSError):
        return False
    have = set(san.get_values_for_type(x509.DNSName))
    expires = cert.not_valid_after_utc
    return set(names) <= have and expires > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=7)


def generate_self_signed(cert_path: Path, key_path: Path, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tuimail self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
