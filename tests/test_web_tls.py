"""
The web door over TLS, on a real ``twistd chatservice --web ssl:...``: the
page is served as ``https://``, the WebSocket upgrade hands the TLS
connection over (``WebSocketResource``), and ``/oper`` knows the channel
is private.  A JSON client speaks WebSocket through wsproto (its
handshake and framing) over Python's ``ssl``.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from tests.support import LOOPBACK, Process, chat_twistd, free_port, temp_dir

SOCKET_TIMEOUT = 10.0


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for localhost, valid a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class TLSClient:
    """A WebSocket over TLS (not verifying the self-signed certificate)."""

    def __init__(self, case: SynchronousTestCase, port: int) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT)
        self.socket = context.wrap_socket(raw)
        case.addCleanup(self.socket.close)
        self.connection = WSConnection(ConnectionType.CLIENT)
        self.received: list[Any] = []
        self.opened = False

    def open(self) -> None:
        self.socket.sendall(
            self.connection.send(Request(host="localhost", target="/ws"))
        )
        self.until(lambda: self.opened)

    def send(self, **message: Any) -> None:
        self.socket.sendall(self.connection.send(TextMessage(json.dumps(message))))

    def until(self, done: Any) -> None:
        """Read until ``done()``."""
        while not done():
            data = self.socket.recv(65536)
            if not data:
                raise AssertionError(f"closed; received {self.received}")
            self.connection.receive_data(data)
            for event in self.connection.events():
                if isinstance(event, AcceptConnection):
                    self.opened = True
                elif isinstance(event, TextMessage):
                    self.received.append(json.loads(event.data))

    def wait_for(self, kind: str) -> dict[str, Any]:
        """The first message of ``kind`` received."""
        self.until(lambda: any(m.get("type") == kind for m in self.received))
        return next(m for m in self.received if m.get("type") == kind)


class WebOverTLSTests(SynchronousTestCase):
    """``--web ssl:...`` end to end."""

    def test_pageAndWebSocketOverTLS(self) -> None:
        """
        Over TLS the page is served, the WebSocket opens and chats, and
        ``/oper`` is not refused for the channel (it is private): it gets
        as far as asking for credentials the server does not have.
        """
        directory = temp_dir(self)
        key, cert = self_signed(directory)
        port = free_port()
        server = Process(
            self,
            chat_twistd(
                free_port(),
                "--web",
                f"ssl:{port}:interface={LOOPBACK}:privateKey={key}:certKey={cert}",
                "--history",
                "none",
            ),
            directory,
            "server",
        )
        server.wait_for_output(r"web service listening")

        page = TLSClient(self, port)
        page.socket.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = page.socket.recv(65536)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:100])
        self.assertIn(b"Content-Security-Policy", answer)

        client = TLSClient(self, port)
        client.open()
        client.send(type="nick", nick="secure")
        self.assertEqual(client.wait_for("registered")["nick"], "secure")
        client.send(type="input", text="/oper admin secret")
        error = client.wait_for("error")
        self.assertIn("without --credentials", error["text"])
