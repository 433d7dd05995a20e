"""
``--config FILE`` (``chatservice.config``): a TOML file of the options of
``twistd chatservice``, its keys read from the options themselves, the
command line overriding it, and every mistake named with its line; and the
complete example of ``docs/options.rst``, loaded as it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.config import line_of, option_specs
from tests.support import SOURCE_ROOT, temp_dir

OPTIONS_DOC = SOURCE_ROOT / "docs" / "options.rst"


def documented_example() -> str:
    """The TOML example of ``docs/options.rst``: its ``code-block:: toml``."""
    lines = OPTIONS_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(".. code-block:: toml") + 1
    block: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip() + "\n"


class ConfigTestCase(SynchronousTestCase):
    """Writes configuration files in a directory of the test's own."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)

    def write(self, text: str, name: str = "chat.toml") -> Path:
        path = self.directory / name
        path.write_text(text, encoding="utf-8")
        return path

    def parse(self, text: str, *argv: str) -> tap.Options:
        """Options from a file of ``text`` and a command line of ``argv``."""
        path = self.write(text)
        options = tap.Options()
        options.parseOptions(["--config", str(path), "--history", "none", *argv])
        return options

    def refused(self, text: str, *argv: str) -> str:
        """The error a file of ``text`` gets."""
        with self.assertRaises(usage.UsageError) as caught:
            self.parse(text, *argv)
        return str(caught.exception)


class FileTests(ConfigTestCase):
    """What a file sets, and what the command line changes of it."""

    def test_everyKindOfOption(self) -> None:
        """
        A flag, numbers, a string and endpoint lists (a list, one string,
        "none") set the options as their command-line forms would.
        """
        options = self.parse(
            "history-private = true\n"
            "idle-timeout = 30\n"
            "flood-rate = 2.5\n"
            'default-room = "hall"\n'
            'chat = ["tcp:7000:interface=127.0.0.1", "unix:chat.sock"]\n'
            'echo = "tcp:7001:interface=127.0.0.1"\n'
            'upper = "none"\n'
        )
        self.assertTrue(options["history-private"])
        self.assertEqual(options.limits.idle_timeout, 30.0)
        self.assertEqual(options.limits.flood_rate, 2.5)
        self.assertEqual(options["default-room"], "hall")
        self.assertEqual(
            options.endpoints["chat"],
            ["tcp:7000:interface=127.0.0.1", "unix:chat.sock"],
        )
        self.assertEqual(options.endpoints["echo"], ["tcp:7001:interface=127.0.0.1"])
        self.assertEqual(options.endpoints["upper"], [])

    def test_falseFlagAndDefaults(self) -> None:
        """A flag set false stays off; options not in the file keep defaults."""
        options = self.parse("history-private = false\n")
        self.assertFalse(options["history-private"])
        self.assertEqual(options.endpoints["chat"], ["tcp:6666"])
        self.assertEqual(options["max-rooms"], 1000)

    def test_commandLineOverrides(self) -> None:
        """
        An option on the command line replaces the file's value, and a
        door's endpoint on the command line replaces the file's whole list.
        """
        options = self.parse(
            'idle-timeout = 30\nmax-rooms = 7\nchat = ["tcp:7000", "unix:c.sock"]\n',
            "--idle-timeout",
            "600",
            "--chat=tcp:7002",
        )
        self.assertEqual(options.limits.idle_timeout, 600.0)
        self.assertEqual(options.endpoints["chat"], ["tcp:7002"])
        self.assertEqual(options["max-rooms"], 7)

    def test_noConfigUnchanged(self) -> None:
        """Without ``--config`` the command line is parsed as it always was."""
        options = tap.Options()
        options.parseOptions(["--history", "none", "--max-rooms", "3"])
        self.assertIsNone(options.config_file)
        self.assertEqual(options["max-rooms"], 3)


class MistakeTests(ConfigTestCase):
    """Every mistake in a file is named, with its key and line."""

    def test_unknownKey(self) -> None:
        """An unknown key is named with its line and the nearest option."""
        error = self.refused("# limits\n\nidle-timout = 30\n")
        self.assertIn("chat.toml, line 3", error)
        self.assertIn("'idle-timout' is not an option", error)
        self.assertIn("did you mean 'idle-timeout'?", error)

    def test_tableIsUnknown(self) -> None:
        """A table is not an option: named at its header's line."""
        error = self.refused("max-rooms = 3\n[limits]\nidle-timeout = 30\n")
        self.assertIn("line 2: 'limits' is not an option", error)

    def test_notInFile(self) -> None:
        """``config``, ``help`` and ``version`` are not keys of a file."""
        for key in ("config", "help", "version"):
            error = self.refused(f'{key} = "x"\n')
            self.assertIn(f"line 1: {key!r} is not an option", error)

    def test_wrongTypes(self) -> None:
        """Each kind of option names the type it expects and the one it got."""
        cases = {
            "history-private = 1": "history-private: expected true or false, "
            "not an integer",
            "chat = 5": "chat: expected a string or an array of strings, not an "
            "integer",
            'chat = ["tcp:1", 2]': "chat: expected a string or an array of strings",
            "chat = []": 'chat: an empty array: give "none" to turn it off',
            "idle-timeout = [1]": "idle-timeout: expected a string or a number, "
            "not an array",
            "idle-timeout = true": "idle-timeout: expected a string or a number, "
            "not a boolean",
            "default-room = 5": "default-room: expected a string, not an integer",
        }
        for text, expected in cases.items():
            error = self.refused(f"\n{text}\n")
            self.assertIn(f"chat.toml, line 2: {expected}", error)

    def test_valueRefusedByOption(self) -> None:
        """The option's own check refuses a value, with the file's line."""
        error = self.refused('max-rooms = 3\nidle-timeout = "ten"\n')
        self.assertIn(
            "line 2: idle-timeout: 'ten' is not a number of seconds, 0 or more", error
        )
        error = self.refused("max-line-length = -1\n")
        self.assertIn("line 1: max-line-length: '-1' is not a whole number", error)

    def test_checkAfterParsingNamesLine(self) -> None:
        """A check made once all options are known names where the file set it."""
        error = self.refused("\n\nmax-rooms = 0\n")
        self.assertIn("--max-rooms must be at least 1", error)
        self.assertIn("(set in", error)
        self.assertIn("chat.toml, line 3)", error)
        error = self.refused('chat = "tcp:abc"\n')
        self.assertIn("--chat 'tcp:abc' is not a valid endpoint", error)
        self.assertIn("chat.toml, line 1)", error)

    def test_checkOfCommandLineNotBlamedOnFile(self) -> None:
        """A command-line mistake is not said to come from the file."""
        error = self.refused("max-rooms = 5\n", "--max-rooms", "0")
        self.assertNotIn("set in", error)

    def test_notToml(self) -> None:
        """A file that is not TOML is named, with tomllib's line and column."""
        error = self.refused("max-rooms = 3\nchat = \n")
        self.assertIn("chat.toml: not valid TOML", error)
        self.assertIn("line 2", error)

    def test_notUtf8(self) -> None:
        """A file that is not UTF-8 is named."""
        path = self.directory / "latin.toml"
        path.write_bytes(b'default-room = "caf\xe9"\n')
        with self.assertRaises(usage.UsageError) as caught:
            tap.Options().parseOptions(["--config", str(path)])
        self.assertIn("latin.toml: not UTF-8", str(caught.exception))

    def test_missingFile(self) -> None:
        """A file that cannot be read is named, with the reason."""
        with self.assertRaises(usage.UsageError) as caught:
            tap.Options().parseOptions(["--config", str(self.directory / "no.toml")])
        self.assertIn("no.toml: No such file or directory", str(caught.exception))


class LineTests(SynchronousTestCase):
    """Finding a key's line (``tomllib`` keeps none)."""

    def test_forms(self) -> None:
        """Bare, quoted, dotted and table forms are found; comments are not."""
        text = (
            "# idle-timeout = 1\n"
            '"max-rooms" = 3\n'
            "idle-timeout=4\n"
            "a.b = 1\n"
            "[[c]]\n"
            "d = 2\n"
        )
        self.assertEqual(line_of(text, "max-rooms"), 2)
        self.assertEqual(line_of(text, "idle-timeout"), 3)
        self.assertEqual(line_of(text, "a"), 4)
        self.assertEqual(line_of(text, "c"), 5)
        self.assertIsNone(line_of(text, "d"))  # in a table: not top-level
        self.assertIsNone(line_of(text, "e"))


class GeneratedKeysTests(SynchronousTestCase):
    """The keys come from the options' definitions."""

    def test_everyOptionIsAKey(self) -> None:
        """Every option of ``twistd chatservice`` but --config/--help/--version."""
        names = {name.rstrip("=") for name in tap.Options().longOpt}
        self.assertEqual(
            set(option_specs(tap.Options)), names - {"config", "help", "version"}
        )

    def test_optionAddedLaterIsAKey(self) -> None:
        """
        A flag, a parameter and a repeatable option added to a subclass are
        keys of its files, with no other change.
        """

        class More(tap.Options):
            optFlags = [["shiny", None, "A new flag."]]
            optParameters = [["colour", None, "blue", "A new parameter."]]

            def opt_extra(self, value: str) -> None:
                """A new repeatable option."""
                self.extras = [*getattr(self, "extras", []), value]

        specs = option_specs(More)
        self.assertEqual(
            (specs["shiny"].kind, specs["colour"].kind, specs["extra"].kind),
            ("flag", "parameter", "list"),
        )
        directory = temp_dir(self)
        path = directory / "more.toml"
        path.write_text(
            'shiny = true\ncolour = "red"\nextra = ["a", "b"]\n', encoding="utf-8"
        )
        options = More()
        options.parseOptions(["--config", str(path), "--history", "none"])
        self.assertEqual(options["shiny"], 1)
        self.assertEqual(options["colour"], "red")
        self.assertEqual(options.extras, ["a", "b"])


class DocumentedExampleTests(SynchronousTestCase):
    """The complete example file of ``docs/options.rst``."""

    def test_exampleLoads(self) -> None:
        """
        The example, as the docs show it, is a valid configuration (in a
        directory holding the files it names) and sets what it says.
        """
        example = documented_example()
        self.assertIn("max-clients", example)
        directory = temp_dir(self)
        (directory / "motd.txt").write_text("Welcome\n", encoding="utf-8")
        (directory / "irc-password.txt").write_text("secret\n", encoding="utf-8")
        (directory / "passwd").write_text("", encoding="utf-8")
        (directory / "chatservice.toml").write_text(example, encoding="utf-8")
        previous = os.getcwd()
        os.chdir(directory)
        self.addCleanup(os.chdir, previous)
        options = tap.Options()
        options.parseOptions(["--config", "chatservice.toml"])
        self.assertEqual(options.endpoints["irc"], ["tcp:6667"])
        self.assertEqual(options.endpoints["upper"], [])
        self.assertEqual(options.motd, ("Welcome",))
        self.assertEqual(options.irc_password, "secret")

    def test_exampleIsComplete(self) -> None:
        """Every key a file may have is in the example (set, or commented out)."""
        example = documented_example()
        shown = set(re.findall(r"(?m)^#?\s*([a-z][a-z-]*)\s*=", example))
        missing: list[Any] = sorted(set(option_specs(tap.Options)) - shown)
        self.assertEqual(missing, [])
