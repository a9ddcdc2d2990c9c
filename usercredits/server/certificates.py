"""One-off TLS certificates for loopback: a certificate authority made for the occasion,
which signs one server certificate (for 127.0.0.1) and one client certificate, in an
owner-only temporary folder that is removed when the block ends.

The embedded database is started with them once, while its user is made
(server/embedded.py): it then talks only to a client holding the client certificate, so
no other process on the machine can reach it before it requires a password. The keys
never leave this process's folder and are worthless once the block ends.
"""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

AUTHORITY = "usercredits one-off authority"
LIFETIME = timedelta(hours=1)
LOOPBACK = IPv4Address("127.0.0.1")


@dataclass(frozen=True, slots=True)
class LoopbackTls:
    """Where the certificates are, as PEM files."""

    authority: Path
    server_certificate: Path
    server_key: Path
    client: Path
    """The client's certificate followed by its key."""


@contextmanager
def loopback_tls() -> Iterator[LoopbackTls]:
    """Certificates valid for the block (see the module doc)."""
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority = _certificate(AUTHORITY, authority_key, authority_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("127.0.0.1", server_key, authority_key, loopback=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("usercredits", client_key, authority_key)
    with tempfile.TemporaryDirectory(prefix="usercredits-tls-") as folder:  # mode 0700
        files = LoopbackTls(*(Path(folder) / name for name in ("ca", "server", "key", "client")))
        files.authority.write_bytes(_pem(authority))
        files.server_certificate.write_bytes(_pem(server))
        files.server_key.write_bytes(_private_pem(server_key))
        files.client.write_bytes(_pem(client) + _private_pem(client_key))
        yield files


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    loopback: bool = False,
) -> x509.Certificate:
    """A certificate for `key` signed by `signer` (itself when it is the authority)."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AUTHORITY)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.BasicConstraints(ca=key is signer, path_length=None), critical=True)
    )
    if loopback:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
