"""
Certificates made at test time with ``cryptography``: a private CA, and
server certificates it signs (for loopback, for another name, expired),
written as PEM files into a test's directory.  Nothing is kept between
runs; no key leaves the directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: Names and addresses a loopback server's certificate is for.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

_NOW = datetime.datetime.now(datetime.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to make, accepted everywhere.
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class ServerFiles:
    """A server's key and certificate files."""

    key: Path
    certificate: Path

    def endpoint(self, port: int = 0, interface: str = "127.0.0.1") -> str:
        """An ``ssl:`` server endpoint string serving this certificate."""
        return (
            f"ssl:{port}:interface={interface}:privateKey={self.key}"
            f":certKey={self.certificate}"
        )


class Authority:
    """A private certificate authority in ``directory`` (``ca.pem``)."""

    def __init__(self, directory: Path, name: str = "chatservice test CA") -> None:
        self.directory = directory
        self.key = _key()
        subject = _name(name)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        #: The CA's certificate, for ``--ca``.
        self.path = directory / "ca.pem"
        self.path.write_bytes(_pem(self.certificate))

    def server(
        self,
        label: str,
        names: tuple[str, ...] = LOOPBACK_NAMES,
        *,
        expired: bool = False,
    ) -> ServerFiles:
        """A server certificate for ``names``, signed by this CA (or expired)."""
        key = _key()
        if expired:
            start = _NOW - datetime.timedelta(days=30)
            end = _NOW - datetime.timedelta(days=1)
        else:
            start = _NOW - datetime.timedelta(days=1)
            end = _NOW + datetime.timedelta(days=30)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_alt_names(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(self.key, hashes.SHA256())
        )
        files = ServerFiles(
            self.directory / f"{label}.key", self.directory / f"{label}.pem"
        )
        files.key.write_bytes(_pem_key(key))
        files.certificate.write_bytes(_pem(certificate))
        return files
