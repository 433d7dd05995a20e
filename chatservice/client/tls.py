"""
``chatservice-client --tls``: a TLS connection that checks the server's
certificate (against the system's trusted authorities, or those of
``--ca FILE``) and its name, and says in one line what is wrong with a
certificate it refuses: expired, signed by an authority it does not trust,
for another name.

OpenSSL reports every such refusal as "certificate verify failed"; the
reason is only known inside the verification, so :class:`VerifyingCreator`
verifies (the chain with OpenSSL, the name with ``service_identity``) and
keeps the reason, and :class:`VerifiedTLSEndpoint` hands it to the client's
protocol as a :class:`CertificateError` in place of OpenSSL's error.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer


class CertificateError(Exception):
    """The server's certificate was refused; the message says why, for a person."""


class CAFileError(ValueError):
    """``--ca FILE`` cannot be used; the message says why."""


#: An ``IOpenSSLTrustRoot`` (Twisted exports the interface from a private
#: module only): what ``platformTrust`` and ``trustRootFromCertificates`` give.
TrustRoot = Any

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


def load_trust(ca_file: str | None) -> TrustRoot:
    """
    The authorities to trust: every certificate of a PEM file (a private
    CA, or a self-signed server certificate itself), or the system's.
    """
    if ca_file is None:
        return ssl.platformTrust()
    try:
        with open(ca_file, "rb") as file:
            data = file.read()
    except OSError as problem:
        raise CAFileError(
            f"cannot read --ca {ca_file!r}: {problem.strerror or problem}"
        ) from None
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise CAFileError(f"--ca {ca_file!r} has no PEM certificate")
    try:
        certificates = [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as problem:  # OpenSSL's words for a damaged block
        raise CAFileError(f"--ca {ca_file!r}: {problem}") from None
    return ssl.trustRootFromCertificates(certificates)


def _name(certificate: x509.Certificate) -> str:
    """A certificate's common name (or whole subject), for messages."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return str(names[0].value)
    return certificate.subject.rfc4514_string() or "(no name)"


def _identities(certificate: x509.Certificate) -> list[str]:
    """The names and addresses a certificate is for (subjectAltName)."""
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        return []
    shown = [str(name) for name in names.get_values_for_type(x509.DNSName)]
    shown += [str(address) for address in names.get_values_for_type(x509.IPAddress)]
    return shown


#: OpenSSL's verification error codes (``X509_V_ERR_*``) that a person meets.
_NOT_YET_VALID = 9
_EXPIRED = 10
_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19
_UNKNOWN_ISSUER = (2, 20, 21)


def describe_verify_error(error: int, depth: int, certificate: x509.Certificate) -> str:
    """Why OpenSSL refused a certificate of the chain, in plain words."""
    which = "the server's certificate" if depth == 0 else f"{_name(certificate)!r}"
    if error == _EXPIRED:
        when = certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        return f"{which} has expired (valid until {when})"
    if error == _NOT_YET_VALID:
        when = certificate.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")
        return f"{which} is not valid yet (valid from {when})"
    if error in (_SELF_SIGNED, _SELF_SIGNED_IN_CHAIN, *_UNKNOWN_ISSUER):
        issuer = certificate.issuer.rfc4514_string() or "itself"
        return (
            f"{which} is signed by an authority that is not trusted "
            f"({issuer}); give its CA certificate with --ca FILE"
        )
    return f"{which} was refused (OpenSSL verification error {error})"


@implementer(IOpenSSLClientConnectionCreator)
class VerifyingCreator:
    """
    TLS client connections to ``hostname`` that verify the server's chain
    against ``trust`` and its name (a DNS name, or an IP address), keeping
    the reason of a refusal in :attr:`problem`.
    """

    def __init__(self, hostname: str, trust: TrustRoot) -> None:
        self.hostname = hostname
        self._is_address = bool(isIPAddress(hostname) or isIPv6Address(hostname))
        self._options = ssl.CertificateOptions(trustRoot=trust)
        #: Why the last connection's certificate was refused, if it was.
        self.problem: str | None = None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        self.problem = None
        connection: SSL.Connection = self._options.clientConnectionForTLS(tlsProtocol)
        if not self._is_address:
            # Server Name Indication: which certificate the server shows.
            connection.set_tlsext_host_name(self.hostname.encode("idna"))
        connection.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify
        )
        return connection

    def _verify(
        self, connection: SSL.Connection, cert: X509, error: int, depth: int, ok: int
    ) -> bool:
        # OpenSSL calls back from C: nothing may be raised from here.
        try:
            certificate = cert.to_cryptography()
            if not ok:
                if self.problem is None:
                    self.problem = describe_verify_error(error, depth, certificate)
                return False
            if depth == 0:
                self.problem = self._check_name(certificate)
                return self.problem is None
        except Exception as problem:
            self.problem = f"the certificate could not be checked: {problem}"
            return False
        return True

    def _check_name(self, certificate: x509.Certificate) -> str | None:
        """Why the server's certificate is not for the host, or ``None``."""
        try:
            if self._is_address:
                verify_certificate_ip_address(certificate, self.hostname)
            else:
                verify_certificate_hostname(certificate, self.hostname)
        except VerificationError:
            names = ", ".join(_identities(certificate)) or "no name"
            return f"the server's certificate is for {names}, not {self.hostname}"
        return None


class _ExplainingProtocol(ProtocolWrapper):
    """Turns OpenSSL's "certificate verify failed" into the reason kept."""

    factory: _ExplainingFactory

    def connectionLost(self, reason: Failure | None = None) -> None:
        problem = self.factory.creator.problem
        if reason is not None and reason.check(SSL.Error) and problem is not None:
            reason = Failure(CertificateError(problem))
        super().connectionLost(reason)


class _ExplainingFactory(WrappingFactory):
    protocol = _ExplainingProtocol

    def __init__(self, wrapped: IProtocolFactory, creator: VerifyingCreator) -> None:
        super().__init__(wrapped)
        self.creator = creator


@implementer(IStreamClientEndpoint)
class VerifiedTLSEndpoint:
    """TLS to ``host:port`` with verification (:class:`VerifyingCreator`)."""

    def __init__(self, reactor: Any, host: str, port: int, trust: TrustRoot) -> None:
        self.creator = VerifyingCreator(host, trust)
        self._endpoint = wrapClientTLS(
            self.creator, HostnameEndpoint(reactor, host, port)
        )

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        connected: Deferred[IProtocol] = self._endpoint.connect(
            _ExplainingFactory(protocolFactory, self.creator)
        )

        def unwrapped(wrapper: IProtocol) -> IProtocol:
            # The application's protocol, not the wrapper around it.
            protocol: IProtocol = getattr(wrapper, "wrappedProtocol", wrapper)
            return protocol

        return connected.addCallback(unwrapped)
