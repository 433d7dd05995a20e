"""
JSON logs (``chatservice.logs``): ``twistd --logger=chatservice.logs.json_observer``
writes every event as a line of JSON that keeps its structured fields, adds
its text and level, and reads back with Twisted's own reader.
"""

from __future__ import annotations

import io
import json
import signal

from twisted.logger import Logger, eventsFromJSONLogFile
from twisted.trial.unittest import SynchronousTestCase

from chatservice.logs import json_observer
from tests.support import LOOPBACK, free_port, json_logged_chat, temp_dir


class ObserverTests(SynchronousTestCase):
    """The observer on an in-memory file."""

    def setUp(self) -> None:
        self.output = io.StringIO()
        self.observer = json_observer(self.output)
        self.log = Logger(namespace="chatservice.test", observer=self.observer)

    def lines(self) -> list[dict[str, object]]:
        text = self.output.getvalue()
        self.assertTrue(text.endswith("\n"))
        return [json.loads(line) for line in text.splitlines()]

    def test_structuredFieldsKept(self) -> None:
        """
        One line per event: its fields as given (strings, numbers, lists),
        its format, namespace and level, and its text as formatted.
        """
        self.log.info(
            "{service} service listening on {address}",
            service="chat",
            address="127.0.0.1:6666",
            reloaded=["flood-rate", "motd"],
            count=3,
        )
        self.log.error("refused {peer}", peer="192.0.2.1")
        first, second = self.lines()
        self.assertEqual(first["service"], "chat")
        self.assertEqual(first["address"], "127.0.0.1:6666")
        self.assertEqual(first["reloaded"], ["flood-rate", "motd"])
        self.assertEqual(first["count"], 3)
        self.assertEqual(
            first["log_format"], "{service} service listening on {address}"
        )
        self.assertEqual(first["log_namespace"], "chatservice.test")
        self.assertEqual(first["text"], "chat service listening on 127.0.0.1:6666")
        self.assertEqual((first["level"], second["level"]), ("info", "error"))
        self.assertEqual(second["peer"], "192.0.2.1")

    def test_readsBack(self) -> None:
        """Twisted's JSON reader gets the events back, fields and level."""
        self.log.warn("{what} happened", what="something")
        self.output.seek(0)
        (event,) = eventsFromJSONLogFile(self.output, recordSeparator=None)
        self.assertEqual(event["what"], "something")
        self.assertEqual(event["log_level"].name, "warn")

    def test_tracebackInText(self) -> None:
        """A failure's traceback is in the text."""
        try:
            1 / 0  # noqa: B018 (the failure logged)
        except ZeroDivisionError:
            self.log.failure("dividing {n}", n=1)
        (line,) = self.lines()
        text = str(line["text"])
        self.assertTrue(text.startswith("dividing 1"))
        self.assertIn("ZeroDivisionError", text)

    def test_ownFieldsWin(self) -> None:
        """An event's own ``text`` or ``level`` field is not replaced."""
        self.log.info("said {text}", text="hello")
        self.observer({"log_format": "legacy", "level": 7})
        first, second = self.lines()
        self.assertEqual(first["text"], "hello")
        self.assertEqual((second["text"], second["level"]), ("legacy", 7))


class TwistdJSONTests(SynchronousTestCase):
    """``twistd --logger=chatservice.logs.json_observer`` for real."""

    def test_twistdLogsJSON(self) -> None:
        """
        Every line twistd writes is a JSON object; the door's "listening"
        event keeps its fields (service, address, endpoint).
        """
        directory = temp_dir(self)
        port = free_port()
        endpoint = f"tcp:{port}:interface={LOOPBACK}"
        server = json_logged_chat(self, directory, port, "--history", "none")
        server.popen.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(), -signal.SIGTERM)
        events = [json.loads(line) for line in server.stdout.splitlines()]
        (listening,) = [e for e in events if e.get("service") == "chat"]
        self.assertEqual(listening["address"], f"{LOOPBACK}:{port}")
        self.assertEqual(listening["endpoint"], endpoint)
        self.assertEqual(
            listening["log_namespace"], "chatservice.service.ListeningService"
        )
        self.assertIn("Server Shut Down.", [e["text"] for e in events])
