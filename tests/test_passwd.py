"""
Tests for ``chatservice-passwd`` (:mod:`chatservice.passwd`): ``main()`` is
called with a temporary file, patched standard streams and a patched
``getpass``; hashes use a tiny scrypt cost.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from chatservice import passwd
from chatservice.auth import parse_hash, read_credentials, verify_password

#: Cheap scrypt cost for tests.
FAST_LN = 4


class PasswdTests(SynchronousTestCase):
    """The chatservice-passwd command."""

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="chatservice-passwd-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.path = os.path.join(self.directory, "creds")
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.patch(sys, "stdin", io.StringIO(""))
        self.answers: list[str] = []
        self.prompts: list[str] = []
        self.patch(passwd, "getpass", self.fake_getpass)

    def fake_getpass(self, prompt: str = "Password: ") -> str:
        self.prompts.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)

    def passwd(self, *args: str, answers: tuple[str, ...] = (), stdin: str = "") -> int:
        self.answers = list(answers)
        sys.stdin = io.StringIO(stdin)
        return passwd.main(["--file", self.path, *args], ln=FAST_LN)

    def clear_output(self) -> None:
        for stream in (self.stdout, self.stderr):
            stream.truncate(0)
            stream.seek(0)

    def assert_error(self, status: int, *expected: str) -> None:
        """Exit status 1 and one line on stderr containing each text."""
        self.assertEqual(status, 1)
        error = self.stderr.getvalue()
        self.assertEqual(error.count("\n"), 1, error)
        self.assertTrue(error.startswith("chatservice-passwd: "), error)
        for text in expected:
            self.assertIn(text, error)

    def assert_usage(self, status: int, expected: str) -> None:
        """Exit status 2, the usage line and a message on stderr."""
        self.assertEqual(status, 2)
        self.assertIn("usage: chatservice-passwd", self.stderr.getvalue())
        self.assertIn(expected, self.stderr.getvalue())

    def test_add_with_prompt(self) -> None:
        """
        NAME asks the password twice with getpass, creates the file with mode
        0600, stores a hash that verifies (never the password) and says so.
        """
        status = self.passwd("alice", answers=("alice-password", "alice-password"))
        self.assertEqual(status, 0, self.stderr.getvalue())
        self.assertEqual(self.prompts, ["Password: ", "Password (again): "])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        encoded = read_credentials(self.path)["alice"]
        self.assertEqual(parse_hash(encoded).ln, FAST_LN)
        self.assertTrue(verify_password("alice-password", encoded))
        with open(self.path) as f:
            self.assertNotIn("alice-password", f.read())
        self.assertEqual(self.stdout.getvalue(), f"added alice to {self.path}\n")
        self.assertEqual(self.stderr.getvalue(), "")

    def test_replace(self) -> None:
        """Setting the password of an existing user replaces it."""
        self.passwd("alice", answers=("first-password",) * 2)
        self.clear_output()
        self.assertEqual(self.passwd("alice", answers=("second-password",) * 2), 0)
        encoded = read_credentials(self.path)["alice"]
        self.assertTrue(verify_password("second-password", encoded))
        self.assertFalse(verify_password("first-password", encoded))
        self.assertIn("changed the password of alice", self.stdout.getvalue())

    def test_password_change_keeps_service_access(self) -> None:
        """
        After ``chown root:chatservice`` and ``chmod 0640`` (what
        docs/deployment.rst advises, so that the service reads the file
        through its group), a password change leaves the file 0640 in the
        same group: the service can still read it and operators log in.
        """
        self.passwd("alice", answers=("first-password",) * 2)
        os.chmod(self.path, 0o640)
        group = os.stat(self.path).st_gid
        self.assertEqual(self.passwd("alice", answers=("second-password",) * 2), 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual(os.stat(self.path).st_gid, group)

    def test_keeps_other_users_and_comments(self) -> None:
        """Adding a user keeps the others and the file's comments."""
        with open(self.path, "w") as f:
            f.write("# our operators\nbob:scrypt$x\n")
        self.assertEqual(self.passwd("alice", answers=("alice-password",) * 2), 0)
        with open(self.path) as f:
            content = f.read()
        self.assertTrue(content.startswith("# our operators\nbob:scrypt$x\nalice:"))

    def test_mismatch(self) -> None:
        """Two different passwords: error 1, nothing written."""
        status = self.passwd("alice", answers=("alice-password", "alice-passwork"))
        self.assert_error(status, "do not match")
        self.assertFalse(os.path.exists(self.path))

    def test_empty(self) -> None:
        """An empty password is refused before the second prompt."""
        self.assert_error(self.passwd("alice", answers=("",)), "empty")
        self.assertEqual(len(self.prompts), 1)
        self.assertFalse(os.path.exists(self.path))

    def test_too_short(self) -> None:
        """
        A password under 8 characters is refused; one of exactly 8 is
        accepted.
        """
        self.assert_error(self.passwd("alice", answers=("1234567",)), "at least 8")
        self.assertFalse(os.path.exists(self.path))
        self.clear_output()
        self.assertEqual(self.passwd("alice", answers=("12345678",) * 2), 0)

    def test_prompt_cancelled(self) -> None:
        """End of input or ^C at the prompt: error 1, nothing written."""
        self.assert_error(self.passwd("alice", answers=()), "cancelled")
        self.clear_output()

        def interrupted(prompt: str = "") -> str:
            raise KeyboardInterrupt

        self.patch(passwd, "getpass", interrupted)
        self.assert_error(self.passwd("alice"), "cancelled")
        self.assertFalse(os.path.exists(self.path))

    def test_stdin(self) -> None:
        """
        --stdin takes the first line of standard input, without its line
        end (LF or CRLF), and asks nothing.
        """
        self.assertEqual(
            self.passwd("--stdin", "alice", stdin="stdin-password\r\nsecond line\n"), 0
        )
        self.assertEqual(self.prompts, [])
        encoded = read_credentials(self.path)["alice"]
        self.assertTrue(verify_password("stdin-password", encoded))
        self.assertEqual(self.passwd("--stdin", "bob", stdin="last line no newline"), 0)
        encoded = read_credentials(self.path)["bob"]
        self.assertTrue(verify_password("last line no newline", encoded))

    def test_stdin_refusals(self) -> None:
        """
        --stdin refuses no input, an empty first line and a short password,
        with error 1.
        """
        for stdin, expected in (
            ("", "no password"),
            ("\nlong-enough\n", "empty"),
            ("short\n", "at least 8"),
        ):
            self.clear_output()
            self.assert_error(self.passwd("--stdin", "alice", stdin=stdin), expected)
        self.assertFalse(os.path.exists(self.path))

    def test_invalid_name(self) -> None:
        """An invalid user name: error 1 saying why, no prompt."""
        for name in ("a:b", "a b", "x" * 33, "#x"):
            self.clear_output()
            self.assert_error(self.passwd(name), "invalid user name")
        self.assertEqual(self.prompts, [])
        self.assertFalse(os.path.exists(self.path))

    def test_broken_file(self) -> None:
        """
        A file with a broken line is left alone, with error 1 naming the
        line, before any password is asked.
        """
        with open(self.path, "w") as f:
            f.write("alice:x\nnot a user line\n")
        self.assert_error(self.passwd("bob"), "line 2")
        self.assertEqual(self.prompts, [])
        with open(self.path) as f:
            self.assertEqual(f.read(), "alice:x\nnot a user line\n")

    def test_delete(self) -> None:
        """--delete NAME removes that user and keeps the others."""
        self.passwd("--stdin", "alice", stdin="alice-password\n")
        self.passwd("--stdin", "bob", stdin="bob-password\n")
        self.assertEqual(self.passwd("--delete", "alice"), 0)
        self.assertEqual(list(read_credentials(self.path)), ["bob"])
        self.assertIn("deleted alice", self.stdout.getvalue())

    def test_delete_unknown(self) -> None:
        """--delete of a user not in the file, or of a missing file: error 1."""
        self.assert_error(self.passwd("--delete", "alice"), "no such file")
        self.clear_output()
        self.passwd("--stdin", "bob", stdin="bob-password\n")
        self.assert_error(self.passwd("--delete", "alice"), "no user alice")

    def test_list(self) -> None:
        """--list prints the names, one a line, in file order."""
        for name in ("zoe", "alice", "bob"):
            self.passwd("--stdin", name, stdin="some-password\n")
        self.clear_output()
        self.assertEqual(self.passwd("--list"), 0)
        self.assertEqual(self.stdout.getvalue(), "zoe\nalice\nbob\n")

    def test_list_missing(self) -> None:
        """--list of a missing file: error 1."""
        self.assert_error(self.passwd("--list"), "no such file")

    def test_unreadable_directory(self) -> None:
        """A file in a directory that does not exist: error 1, one line."""
        self.path = os.path.join(self.directory, "absent", "creds")
        self.assert_error(self.passwd("--stdin", "alice", stdin="alice-password\n"))

    def test_usage_errors(self) -> None:
        """Wrong combinations of arguments exit with status 2 and the usage."""
        for args, expected in (
            ((), "give NAME"),
            (("--list", "alice"), "cannot go with"),
            (("--delete", "bob", "alice"), "cannot go with"),
            (("--stdin", "--list"), "--stdin only goes with NAME"),
            (("--list", "--delete", "bob"), "not allowed with"),
            (("--bogus",), "unrecognized arguments"),
            (("alice", "bob"), "unrecognized arguments"),
        ):
            self.clear_output()
            self.assert_usage(self.passwd(*args), expected)
        self.assertEqual(self.prompts, [])
        self.assertFalse(os.path.exists(self.path))

    def test_help(self) -> None:
        """--help prints the help on stdout and exits 0."""
        self.assertEqual(passwd.main(["--help"]), 0)
        self.assertIn("--delete NAME", self.stdout.getvalue())

    def test_default_file(self) -> None:
        """Without --file, the file is chatservice.passwd in the current directory."""
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        sys.stdin = io.StringIO("alice-password\n")
        self.assertEqual(passwd.main(["--stdin", "alice"], ln=FAST_LN), 0)
        path = os.path.join(self.directory, "chatservice.passwd")
        self.assertEqual(list(read_credentials(path)), ["alice"])

    def test_password_never_printed(self) -> None:
        """Neither stdout nor stderr ever shows the password."""
        self.passwd("alice", answers=("Secret-Password",) * 2)
        self.passwd("alice", answers=("Secret-Password", "Secret-Passwore"))
        self.passwd("--stdin", "bob", stdin="Secret-Password\n")
        self.passwd("--list")
        output = self.stdout.getvalue() + self.stderr.getvalue()
        self.assertNotIn("Secret-Password", output)


class ModuleTests(SynchronousTestCase):
    """``python -m chatservice.passwd``."""

    def test_run_as_module(self) -> None:
        """
        The module runs as a program, with the default (real) scrypt cost:
        it adds a user from stdin and exits 0, and exits 2 on bad usage.
        """
        directory = tempfile.mkdtemp(prefix="chatservice-passwd-")
        self.addCleanup(shutil.rmtree, directory, True)
        command = [sys.executable, "-m", "chatservice.passwd"]
        done = subprocess.run(
            [*command, "--stdin", "alice"],
            input="alice-password\n",
            capture_output=True,
            text=True,
            cwd=directory,
            check=False,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        encoded = read_credentials(os.path.join(directory, "chatservice.passwd"))[
            "alice"
        ]
        self.assertTrue(encoded.startswith("scrypt$ln=14,r=8,p=1$"))
        self.assertTrue(verify_password("alice-password", encoded))
        usage = subprocess.run(
            command, capture_output=True, text=True, cwd=directory, check=False
        )
        self.assertEqual(usage.returncode, 2)
        self.assertIn("usage:", usage.stderr)
