"""
Tests for :mod:`chatservice.auth`: hashing, the credentials file, the
checker, realm and portal, throttling and the authenticator, through the
names the package exports (and the checker's and hashing's modules where a
test patches or reads their internals).

Hashes use tiny scrypt parameters (``ln=4``) to stay fast, except one test
that checks the defaults.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatservice.auth import (
    DEFAULT_LN,
    LOGIN_FAILED,
    Authenticator,
    CredentialsFileChecker,
    CredentialsFileError,
    InvalidNameError,
    IOperator,
    LoginFailed,
    LoginThrottle,
    MalformedHashError,
    Operator,
    OperatorRealm,
    address_key,
    check_name,
    hash_password,
    hashing,
    make_portal,
    parse_hash,
    read_credentials,
    update_credentials,
    valid_name,
    verify_password,
    write_credentials,
)
from chatservice.auth import checker as checker_module

#: Cheap scrypt cost for tests: N = 16.
FAST_LN = 4

ENCODED = re.compile(
    r"scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)"
)


def fast_hash(password: str) -> str:
    return hash_password(password, ln=FAST_LN)


class CountingRunner:
    """Runs the checker's verification at once, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, function: Callable[[], bool]) -> Deferred[bool]:
        self.calls += 1
        return succeed(function())


class HeldRunner:
    """
    Holds each verification until the test releases it: logins whose
    password checks are all in progress at once, as in parallel threads.
    """

    def __init__(self) -> None:
        self.held: list[tuple[Deferred[bool], Callable[[], bool]]] = []

    def __call__(self, function: Callable[[], bool]) -> Deferred[bool]:
        result: Deferred[bool] = Deferred()
        self.held.append((result, function))
        return result

    def release(self) -> None:
        """Finish every held verification, in order."""
        held, self.held = self.held, []
        for result, function in held:
            result.callback(function())


def refuse_fchown(fd: int, uid: int, gid: int) -> None:
    """os.fchown for a caller who may not give a file that group."""
    raise PermissionError(1, "Operation not permitted")


class TempDirMixin:
    """A fresh directory per test, removed afterwards."""

    addCleanup: Callable[..., Any]

    def make_dir(self) -> str:
        directory = tempfile.mkdtemp(prefix="chatservice-auth-")
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    def make_path(self) -> str:
        return os.path.join(self.make_dir(), "chatservice.passwd")


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class HashTests(SynchronousTestCase):
    """hash_password, parse_hash and verify_password."""

    def test_format_round_trip(self) -> None:
        """
        A hash reads ``scrypt$ln=L,r=R,p=P$SALT$HASH`` with the parameters it
        was made with, a 16-byte salt and a 32-byte key, and the password it
        was made from verifies against it.
        """
        encoded = fast_hash("correct horse")
        match = ENCODED.fullmatch(encoded)
        self.assertIsNotNone(match)
        parsed = parse_hash(encoded)
        self.assertEqual((parsed.ln, parsed.r, parsed.p), (FAST_LN, 8, 1))
        self.assertEqual(len(parsed.salt), 16)
        self.assertEqual(len(parsed.hash), 32)
        self.assertNotIn("=", encoded.split("$", 2)[2])  # no base64 padding
        self.assertTrue(verify_password("correct horse", encoded))

    def test_default_parameters(self) -> None:
        """
        Without parameters, hash_password uses ln=14, r=8, p=1 (the
        documented defaults) and the result verifies.
        """
        self.assertEqual(DEFAULT_LN, 14)
        encoded = hash_password("correct horse")
        self.assertTrue(encoded.startswith("scrypt$ln=14,r=8,p=1$"))
        self.assertTrue(verify_password("correct horse", encoded))

    def test_wrong_password(self) -> None:
        """A different password, even by one character or case, fails."""
        encoded = fast_hash("correct horse")
        for wrong in ("correct hors", "Correct horse", "correct horse ", ""):
            self.assertFalse(verify_password(wrong, encoded), wrong)

    def test_salt_unique(self) -> None:
        """
        Two hashes of the same password have different salts (and so
        different keys), and both verify.
        """
        hashes = [fast_hash("same password") for _ in range(20)]
        self.assertEqual(len({parse_hash(h).salt for h in hashes}), 20)
        self.assertEqual(len(set(hashes)), 20)
        for encoded in hashes:
            self.assertTrue(verify_password("same password", encoded))

    def test_stored_parameters_are_used(self) -> None:
        """
        Verification uses the parameters recorded in each hash, so hashes
        made with other parameters keep working when the defaults change.
        """
        for ln, r, p in ((3, 1, 1), (5, 4, 2), (FAST_LN, 8, 1)):
            encoded = hash_password("pw", ln=ln, r=r, p=p)
            self.assertTrue(encoded.startswith(f"scrypt$ln={ln},r={r},p={p}$"))
            self.assertTrue(verify_password("pw", encoded))

    def test_parameters_out_of_range(self) -> None:
        """hash_password refuses parameters that are zero or far too costly."""
        for params in ({"ln": 0}, {"ln": 32}, {"r": 0}, {"p": 0}, {"ln": 24}):
            with self.assertRaises(ValueError):
                hash_password("pw", **params)

    def test_unicode_normalized(self) -> None:
        """
        A password typed with a precomposed or a decomposed accent is the
        same password (both are NFC-normalized before hashing).
        """
        composed = "caf\u00e9-password"
        decomposed = unicodedata.normalize("NFD", composed)
        self.assertNotEqual(composed, decomposed)
        self.assertTrue(verify_password(decomposed, fast_hash(composed)))

    def test_malformed_hash(self) -> None:
        """
        verify_password returns False, without raising, for a stored hash it
        cannot read; parse_hash says why with MalformedHashError.
        """
        good = parse_hash(fast_hash("pw"))
        salt = hashing._b64encode(good.salt)
        key = hashing._b64encode(good.hash)
        malformed = [
            "",
            "pw",
            "$1$abc$def",
            f"bcrypt$ln=4,r=8,p=1${salt}${key}",
            f"scrypt$ln=4,r=8,p=1${salt}",
            f"scrypt$ln=4,r=8,p=1$${key}",
            f"scrypt$ln=4,r=8${salt}${key}",
            f"scrypt$r=8,ln=4,p=1${salt}${key}",
            f"scrypt$ln=0,r=8,p=1${salt}${key}",
            f"scrypt$ln=31,r=8,p=1${salt}${key}",
            f"scrypt$ln=4,r=8,p=1${salt}${key}=",
            f"scrypt$ln=4,r=8,p=1$!!!!${key}",
            f"scrypt$ln=4,r=8,p=1${salt}$A",
            f"scrypt$ln=4,r=8,p=1$QUJD${key}",
            f"scrypt$ln=4,r=8,p=1${salt}$QUJD",
            f"scrypt$ln=4,r=8,p=1${salt}${key}\n",
            f"scrypt$ln=\u0664,r=8,p=1${salt}${key}",
        ]
        for encoded in malformed:
            self.assertFalse(verify_password("pw", encoded), encoded)
            self.assertRaises(MalformedHashError, parse_hash, encoded)

    def test_invalid_unicode_password(self) -> None:
        """
        A password with a lone surrogate (not valid Unicode) verifies as
        False instead of raising.
        """
        self.assertFalse(verify_password("pw\udcff", fast_hash("pw")))

    def test_compared_in_constant_time(self) -> None:
        """
        verify_password compares the derived key with the stored one through
        hmac.compare_digest (constant time), once per check, whether the
        password is right or wrong; never with ``==``.
        """
        compared: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def compare_digest(a: bytes, b: bytes) -> bool:
            compared.append((a, b))
            same: bool = real(a, b)
            return same

        self.patch(hmac, "compare_digest", compare_digest)
        encoded = fast_hash("pw")
        stored = parse_hash(encoded).hash
        self.assertTrue(verify_password("pw", encoded))
        self.assertFalse(verify_password("nope", encoded))
        self.assertEqual(len(compared), 2)
        self.assertEqual([b for _, b in compared], [stored, stored])
        self.assertEqual(compared[0][0], stored)
        self.assertNotEqual(compared[1][0], stored)

    def test_memory_cap(self) -> None:
        """
        No stored hash may make a login allocate more than 256 MiB: ln=17
        with r=8 (128 MiB) is read, ln=18 with r=8 or ln=17 with r=16 (just
        over 256 MiB) are refused as malformed, without being computed, and
        hash_password refuses them too.
        """
        good = parse_hash(fast_hash("pw"))
        tail = f"${hashing._b64encode(good.salt)}${hashing._b64encode(good.hash)}"
        self.assertEqual(parse_hash(f"scrypt$ln=17,r=8,p=1{tail}").ln, 17)
        self.patch(hashlib, "scrypt", None)
        for ln, r in ((18, 8), (17, 16)):
            encoded = f"scrypt$ln={ln},r={r},p=1{tail}"
            error = self.assertRaises(MalformedHashError, parse_hash, encoded)
            self.assertIn("256 MiB", str(error))
            self.assertFalse(verify_password("pw", encoded))
            self.assertRaises(ValueError, hash_password, "pw", ln=ln, r=r)


class NameTests(SynchronousTestCase):
    """check_name and valid_name."""

    def test_valid(self) -> None:
        """Names of 1 to 32 printable characters, any script, are valid."""
        for name in ("a", "alice", "Zoë", "张三", "op-1_x.y", "a" * 32):
            self.assertTrue(valid_name(name), name)
            self.assertEqual(check_name(name), name)

    def test_invalid(self) -> None:
        """
        Empty names, names over 32 characters, and names with ``:``,
        whitespace, control or invisible format characters, or a leading
        ``#`` are refused with a message saying why.
        """
        for name in (
            "",
            "a" * 33,
            "a:b",
            "a b",
            "a\tb",
            "a\nb",
            "a\x00b",
            "a\x7fb",
            "a\u200bb",
            "a\u00a0b",
            "#root",
        ):
            self.assertFalse(valid_name(name), repr(name))
            with self.assertRaises(InvalidNameError) as caught:
                check_name(name)
            self.assertTrue(str(caught.exception))

    def test_nfc(self) -> None:
        """A decomposed name is stored and looked up in its NFC form."""
        self.assertEqual(check_name("Zoe\u0308"), "Zo\u00eb")


class FileTests(TempDirMixin, SynchronousTestCase):
    """read_credentials, write_credentials and update_credentials."""

    def test_round_trip(self) -> None:
        """What write_credentials writes, read_credentials reads back in order."""
        path = self.make_path()
        users = {"zoe": fast_hash("one"), "alice": fast_hash("two")}
        write_credentials(path, users)
        read = read_credentials(path)
        self.assertEqual(read, users)
        self.assertEqual(list(read), ["zoe", "alice"])

    def test_mode_kept_for_the_group(self) -> None:
        """
        A rewrite keeps the group's read permission of the file it replaces
        (0640 stays 0640, as docs/deployment.rst advises) and its group, and
        nothing more: others lose theirs, the group its write permission;
        0600 stays 0600.  No temporary file is left behind.
        """
        directory = self.make_dir()
        path = os.path.join(directory, "creds")
        with open(path, "w") as f:
            f.write("")
        group = os.stat(path).st_gid
        for before, after in ((0o640, 0o640), (0o644, 0o640), (0o660, 0o640)):
            os.chmod(path, before)
            write_credentials(path, {"alice": fast_hash("pw")})
            self.assertEqual(mode(path), after, oct(before))
            self.assertEqual(os.stat(path).st_gid, group)
            os.chmod(path, 0o600)
            update_credentials(path, "bob", fast_hash("pw"))
            self.assertEqual(mode(path), 0o600)
        os.chmod(path, 0o606)
        write_credentials(path, {"alice": fast_hash("pw")})
        self.assertEqual(mode(path), 0o600)
        self.assertEqual(os.listdir(directory), ["creds"])

    def test_group_kept_as_root(self) -> None:
        """
        Run as root (``sudo chatservice-passwd``), a rewrite keeps the owner
        and group of the file it replaces, with its group's read bit: the
        service, in that group, can still read the file.
        """
        if os.geteuid() != 0:
            raise SkipTest("only root can give a file another owner")
        path = self.make_path()
        write_credentials(path, {"alice": fast_hash("pw")})
        os.chown(path, 12345, 23456)
        os.chmod(path, 0o640)
        update_credentials(path, "bob", fast_hash("pw"))
        info = os.stat(path)
        self.assertEqual((info.st_uid, info.st_gid), (12345, 23456))
        self.assertEqual(mode(path), 0o640)

    def test_group_read_dropped_with_the_group(self) -> None:
        """
        When the file's group cannot be kept (the caller is not in it), the
        new file does not keep the group-read bit either: another group must
        not be able to read it.
        """
        path = self.make_path()
        write_credentials(path, {"alice": fast_hash("pw")})
        os.chmod(path, 0o640)
        self.patch(os, "fchown", refuse_fchown)
        real_fstat = os.fstat

        def fstat(fd: int) -> Any:
            info = real_fstat(fd)
            values = list(info)
            values[stat.ST_GID] = info.st_gid + 1
            return os.stat_result(values)

        self.patch(os, "fstat", fstat)
        update_credentials(path, "bob", fast_hash("pw"))
        self.assertEqual(mode(path), 0o600)

    def test_new_file_mode(self) -> None:
        """A file created by update_credentials has mode 0600 and a header."""
        path = self.make_path()
        self.assertFalse(update_credentials(path, "alice", fast_hash("pw")))
        self.assertEqual(mode(path), 0o600)
        with open(path) as f:
            self.assertTrue(f.readline().startswith("#"))
        self.assertEqual(list(read_credentials(path)), ["alice"])

    def test_comments_and_blank_lines(self) -> None:
        """
        ``#`` comments (also indented), blank lines and CRLF line ends are
        allowed; blanks around a line are ignored.
        """
        path = self.make_path()
        encoded = fast_hash("pw")
        with open(path, "w", newline="") as f:
            f.write(
                f"# users\r\n\r\n  # indented\n  alice:{encoded}  \r\n\nbob:{encoded}"
            )
        self.assertEqual(read_credentials(path), {"alice": encoded, "bob": encoded})

    def test_invalid_lines(self) -> None:
        """
        A line without ``:``, with an invalid name or repeating a name makes
        the file unreadable, with its line number in the message.
        """
        path = self.make_path()
        for content, expected in (
            ("# c\nalice\n", "line 2: expected NAME:HASH"),
            ("a b:x\n", "line 1: a user name cannot contain"),
            (":x\n", "line 1: a user name has 1 to 32"),
            ("alice:x\n\nalice:y\n", "line 3: user alice appears twice"),
        ):
            with open(path, "w") as f:
                f.write(content)
            with self.assertRaises(CredentialsFileError) as caught:
                read_credentials(path)
            self.assertIn(expected, str(caught.exception))

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 is refused with CredentialsFileError."""
        path = self.make_path()
        with open(path, "wb") as f:
            f.write(b"\xffalice:x\n")
        self.assertRaises(CredentialsFileError, read_credentials, path)

    def test_missing_file(self) -> None:
        """Reading a missing file raises FileNotFoundError."""
        self.assertRaises(FileNotFoundError, read_credentials, self.make_path())

    def test_write_invalid_name(self) -> None:
        """
        write_credentials refuses an invalid name, leaving the existing file
        as it was and no temporary file.
        """
        directory = self.make_dir()
        path = os.path.join(directory, "creds")
        write_credentials(path, {"alice": "x"})
        for name in ("a:b", "a b", "", "x" * 33, "bad\x00"):
            self.assertRaises(InvalidNameError, write_credentials, path, {name: "x"})
            self.assertRaises(InvalidNameError, update_credentials, path, name, "x")
        self.assertEqual(read_credentials(path), {"alice": "x"})
        self.assertEqual(os.listdir(directory), ["creds"])

    def test_write_invalid_hash(self) -> None:
        """A hash that is empty or would break the line format is refused."""
        path = self.make_path()
        for encoded in ("", "a\nbob:x", "a b", "x\r"):
            self.assertRaises(ValueError, write_credentials, path, {"a": encoded})
            self.assertRaises(ValueError, update_credentials, path, "a", encoded)
        self.assertFalse(os.path.exists(path))

    def test_update_keeps_other_lines(self) -> None:
        """
        update_credentials replaces a user in place, appends a new one and
        deletes one, keeping comments, blank lines and order; the file,
        made by hand with mode 0644, keeps only its group's read bit.
        """
        path = self.make_path()
        with open(path, "w") as f:
            f.write("# operators\nalice:old\n\n# admins\nbob:b\n")
        os.chmod(path, 0o644)
        self.assertTrue(update_credentials(path, "alice", "new"))
        self.assertFalse(update_credentials(path, "carol", "c"))
        self.assertTrue(update_credentials(path, "bob", None))
        with open(path) as f:
            self.assertEqual(f.read(), "# operators\nalice:new\n\n# admins\ncarol:c\n")
        self.assertEqual(mode(path), 0o640)

    def test_update_refuses_invalid_file(self) -> None:
        """update_credentials does not rewrite a file it cannot read."""
        path = self.make_path()
        with open(path, "w") as f:
            f.write("garbage\n")
        self.assertRaises(CredentialsFileError, update_credentials, path, "a", "x")
        with open(path) as f:
            self.assertEqual(f.read(), "garbage\n")

    def test_symlink_target_updated(self) -> None:
        """
        Writing through a symbolic link replaces the file it points to and
        leaves the link in place.
        """
        directory = self.make_dir()
        target = os.path.join(directory, "real")
        link = os.path.join(directory, "link")
        write_credentials(target, {"alice": "x"})
        os.symlink(target, link)
        update_credentials(link, "bob", "y")
        self.assertTrue(os.path.islink(link))
        self.assertEqual(read_credentials(target), {"alice": "x", "bob": "y"})


class CheckerTests(TempDirMixin, SynchronousTestCase):
    """CredentialsFileChecker."""

    def setUp(self) -> None:
        self.path = self.make_path()
        write_credentials(
            self.path, {"alice": fast_hash("alice-pw"), "bob": fast_hash("bob-pw")}
        )
        self.runner = CountingRunner()
        self.checker = CredentialsFileChecker(self.path, run=self.runner)

    def check(self, name: bytes, password: bytes) -> Deferred[bytes | tuple[()]]:
        return self.checker.requestAvatarId(UsernamePassword(name, password))

    def test_interface(self) -> None:
        """The checker provides ICredentialsChecker for IUsernamePassword."""
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker))

    def test_success(self) -> None:
        """The right password gives the user name as avatar ID."""
        self.assertEqual(
            self.successResultOf(self.check(b"alice", b"alice-pw")), b"alice"
        )
        self.assertEqual(self.successResultOf(self.check(b"bob", b"bob-pw")), b"bob")
        self.assertEqual(self.runner.calls, 2)

    def test_wrong_password(self) -> None:
        """A wrong password, even another user's, fails with UnauthorizedLogin."""
        for password in (b"bob-pw", b"", b"alice-pw "):
            self.failureResultOf(self.check(b"alice", password), UnauthorizedLogin)

    def test_unknown_user(self) -> None:
        """
        An unknown user fails like a wrong password, and still costs one
        hash computation off the reactor thread.
        """
        failure = self.failureResultOf(self.check(b"mallory", b"pw"), UnauthorizedLogin)
        self.assertEqual(str(failure.value), "unknown user")
        self.assertEqual(self.runner.calls, 1)

    def test_invalid_credentials_bytes(self) -> None:
        """
        A user name that is not UTF-8 fails as an unknown user, and a
        password that is not UTF-8 as a wrong one; neither raises.
        """
        self.failureResultOf(self.check(b"\xff", b"alice-pw"), UnauthorizedLogin)
        self.failureResultOf(self.check(b"alice", b"\xff\xfe"), UnauthorizedLogin)
        self.assertEqual(self.runner.calls, 2)

    def test_unknown_user_same_cost(self) -> None:
        """
        The hash an unknown user is checked against has the same scrypt
        parameters as the users in the file.
        """
        checked: list[str] = []

        def recording(password: str, encoded: str) -> bool:
            checked.append(encoded)
            return False

        self.patch(checker_module, "verify_password", recording)
        self.failureResultOf(self.check(b"mallory", b"pw"), UnauthorizedLogin)
        self.assertTrue(checked[0].startswith(f"scrypt$ln={FAST_LN},r=8,p=1$"))

    def test_missing_file(self) -> None:
        """
        A missing file means nobody can log in; that is logged once as an
        error, not on every attempt, and is not an exception.
        """
        os.remove(self.path)
        with capturedLogs() as events:
            for _ in range(3):
                self.failureResultOf(
                    self.check(b"alice", b"alice-pw"), UnauthorizedLogin
                )
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("no credentials file", formatEvent(errors[0]))
        self.assertEqual(errors[0]["path"], self.path)

    def test_file_appears(self) -> None:
        """Once a missing file is created, its users can log in."""
        os.remove(self.path)
        self.failureResultOf(self.check(b"alice", b"alice-pw"), UnauthorizedLogin)
        write_credentials(self.path, {"alice": fast_hash("alice-pw")})
        self.assertEqual(
            self.successResultOf(self.check(b"alice", b"alice-pw")), b"alice"
        )

    def test_reload_on_change(self) -> None:
        """
        A password changed in the file (as chatservice-passwd does it) applies
        to the next attempt without restarting; a deleted user can no longer
        log in.
        """
        self.successResultOf(self.check(b"alice", b"alice-pw"))
        update_credentials(self.path, "alice", fast_hash("new-alice-pw"))
        self.failureResultOf(self.check(b"alice", b"alice-pw"), UnauthorizedLogin)
        self.successResultOf(self.check(b"alice", b"new-alice-pw"))
        update_credentials(self.path, "bob", None)
        self.failureResultOf(self.check(b"bob", b"bob-pw"), UnauthorizedLogin)

    def test_reload_in_place_edit(self) -> None:
        """
        A file rewritten in place (same inode) is read again when its
        modification time changes, even if its size does not.
        """
        self.successResultOf(self.check(b"alice", b"alice-pw"))
        before = os.stat(self.path)
        with open(self.path) as f:
            lines = f.read().splitlines(keepends=True)
        index = next(i for i, line in enumerate(lines) if line.startswith("alice:"))
        lines[index] = f"alice:{fast_hash('ALICE-PW')}\n"  # same length
        with open(self.path, "w") as f:
            f.write("".join(lines))
        os.utime(self.path, ns=(0, before.st_mtime_ns + 1_000_000_000))
        after = os.stat(self.path)
        self.assertEqual((after.st_ino, after.st_size), (before.st_ino, before.st_size))
        self.successResultOf(self.check(b"alice", b"ALICE-PW"))

    def test_not_reread_when_unchanged(self) -> None:
        """An unchanged file is read once, not on every attempt."""
        reads: list[str] = []
        real = read_credentials

        def counting(path: str) -> dict[str, str]:
            reads.append(path)
            return real(path)

        self.patch(checker_module, "read_credentials", counting)
        for _ in range(3):
            self.successResultOf(self.check(b"alice", b"alice-pw"))
        self.assertEqual(len(reads), 1)

    def test_malformed_stored_hash(self) -> None:
        """
        A user whose stored hash is malformed cannot log in, which is logged
        (once per reading of the file); the other users are not affected.
        """
        write_credentials(
            self.path, {"alice": "plaintext-password", "bob": fast_hash("bob-pw")}
        )
        with capturedLogs() as events:
            failure = self.failureResultOf(
                self.check(b"alice", b"plaintext-password"), UnauthorizedLogin
            )
            self.failureResultOf(self.check(b"alice", b"x"), UnauthorizedLogin)
        self.assertEqual(str(failure.value), "malformed stored hash")
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["user"], "alice")
        self.assertIn("malformed hash for alice", formatEvent(errors[0]))
        self.assertEqual(self.runner.calls, 2)
        self.successResultOf(self.check(b"bob", b"bob-pw"))

    def test_invalid_file(self) -> None:
        """
        A file with a broken line lets nobody in, is logged once, and is
        used again as soon as it is fixed.
        """
        with open(self.path, "a") as f:
            f.write("no colon here\n")
        with capturedLogs() as events:
            for _ in range(2):
                self.failureResultOf(
                    self.check(b"alice", b"alice-pw"), UnauthorizedLogin
                )
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("expected NAME:HASH", formatEvent(errors[0]))
        write_credentials(self.path, {"alice": fast_hash("alice-pw")})
        self.successResultOf(self.check(b"alice", b"alice-pw"))

    def test_default_runner_uses_thread(self) -> None:
        """
        Without ``run``, the verification goes through deferToThread, never
        on the reactor thread.
        """
        calls: list[Callable[[], bool]] = []

        def fake(function: Callable[[], bool]) -> Deferred[bool]:
            calls.append(function)
            return succeed(function())

        self.patch(checker_module, "deferToThread", fake)
        checker = CredentialsFileChecker(self.path)
        result = checker.requestAvatarId(UsernamePassword(b"alice", b"alice-pw"))
        self.assertEqual(self.successResultOf(result), b"alice")
        self.assertEqual(len(calls), 1)


class PortalTests(TempDirMixin, SynchronousTestCase):
    """IOperator, Operator, OperatorRealm and make_portal."""

    def test_login_gives_operator(self) -> None:
        """
        Logging in through the portal gives an Operator avatar providing
        IOperator and holding the user name, and a logout callable.
        """
        path = self.make_path()
        write_credentials(path, {"alice": fast_hash("alice-pw")})
        portal = make_portal(CredentialsFileChecker(path, run=CountingRunner()))
        interface, avatar, logout = self.successResultOf(
            portal.login(UsernamePassword(b"alice", b"alice-pw"), None, IOperator)
        )
        self.assertIs(interface, IOperator)
        self.assertEqual(avatar, Operator("alice"))
        self.assertTrue(verifyObject(IOperator, avatar))
        logout()

    def test_realm_other_interface(self) -> None:
        """The realm refuses to give an avatar for another interface."""
        self.assertRaises(
            NotImplementedError,
            OperatorRealm().requestAvatar,
            b"alice",
            None,
            ICredentialsChecker,
        )

    def test_realm_anonymous(self) -> None:
        """The realm has no anonymous avatar."""
        self.assertRaises(
            NotImplementedError, OperatorRealm().requestAvatar, (), None, IOperator
        )


class ThrottleTests(SynchronousTestCase):
    """LoginThrottle."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock)

    def fail_times(self, key: str, count: int) -> None:
        for _ in range(count):
            self.throttle.failed(key)

    def test_defaults(self) -> None:
        """The defaults are 5 failures within 60 s, 60 s lockout, 10 000 keys."""
        self.assertEqual(
            (
                self.throttle.max_failures,
                self.throttle.window,
                self.throttle.lockout,
                self.throttle.max_keys,
            ),
            (5, 60.0, 60.0, 10_000),
        )

    def test_lockout(self) -> None:
        """
        Four failures leave a key free; the fifth locks it for 60 s, counted
        down by the clock.
        """
        self.fail_times("k", 4)
        self.assertIsNone(self.throttle.retry_after("k"))
        self.throttle.failed("k")
        self.assertEqual(self.throttle.retry_after("k"), 60.0)
        self.clock.advance(59.5)
        self.assertEqual(self.throttle.retry_after("k"), 0.5)

    def test_lockout_expires(self) -> None:
        """
        After the lockout the key may try again, with a fresh count: one
        more failure does not lock it again.
        """
        self.fail_times("k", 5)
        self.clock.advance(60)
        self.assertIsNone(self.throttle.retry_after("k"))
        self.throttle.failed("k")
        self.assertIsNone(self.throttle.retry_after("k"))

    def test_failures_outside_window(self) -> None:
        """Only failures within the last 60 s count toward the limit."""
        for when in (0, 20, 40, 61, 70):
            self.clock.advance(when - self.clock.seconds())
            self.throttle.failed("k")
        # The failure at 0 is more than 60 s old at 61: four remain.
        self.assertIsNone(self.throttle.retry_after("k"))
        self.clock.advance(5)
        self.throttle.failed("k")
        self.assertEqual(self.throttle.retry_after("k"), 60.0)

    def test_keys_independent(self) -> None:
        """Locking one key leaves the others free."""
        self.fail_times("a", 5)
        self.fail_times("b", 4)
        self.assertIsNotNone(self.throttle.retry_after("a"))
        self.assertIsNone(self.throttle.retry_after("b"))
        self.assertIsNone(self.throttle.retry_after("c"))

    def test_succeeded_forgets(self) -> None:
        """succeeded() forgets a key's failures."""
        self.fail_times("k", 4)
        self.throttle.succeeded("k")
        self.throttle.failed("k")
        self.assertIsNone(self.throttle.retry_after("k"))
        self.assertEqual(len(self.throttle), 1)

    def test_custom_limits(self) -> None:
        """max_failures, window and lockout can be set."""
        throttle = LoginThrottle(self.clock, max_failures=2, window=10, lockout=300)
        throttle.failed("k")
        self.clock.advance(11)
        throttle.failed("k")
        self.assertIsNone(throttle.retry_after("k"))
        throttle.failed("k")
        self.assertEqual(throttle.retry_after("k"), 300.0)

    def test_invalid_limits(self) -> None:
        """Limits that make no sense are refused."""
        for kwargs in ({"max_failures": 0}, {"max_keys": 0}, {"window": -1}):
            self.assertRaises(ValueError, LoginThrottle, self.clock, **kwargs)

    def test_old_entries_expire(self) -> None:
        """
        Entries that can no longer lock are dropped: the table does not keep
        every key that ever failed.
        """
        for number in range(100):
            self.throttle.failed(f"k{number}")
        self.fail_times("locked", 5)
        self.assertEqual(len(self.throttle), 101)
        self.clock.advance(61)
        self.throttle.failed("new")
        self.assertEqual(len(self.throttle), 1)

    def test_attempts_in_progress_count(self) -> None:
        """
        Attempts begun and not ended count toward the limit with the
        failures: 3 failures and 2 in progress refuse another attempt for a
        second; an ended attempt frees its place; a failed one counts as a
        failure, and the fifth failure locks the key.
        """
        self.fail_times("k", 3)
        self.throttle.begin("k")
        self.assertIsNone(self.throttle.retry_after("k"))
        self.throttle.begin("k")
        self.assertEqual(self.throttle.retry_after("k"), 1.0)
        self.throttle.ended("k")
        self.assertIsNone(self.throttle.retry_after("k"))
        self.throttle.failed("k")
        self.assertIsNone(self.throttle.retry_after("k"))
        self.throttle.begin("k")
        self.assertEqual(self.throttle.retry_after("k"), 1.0)
        self.throttle.failed("k")
        self.assertEqual(self.throttle.retry_after("k"), 60.0)

    def test_attempt_in_progress_kept(self) -> None:
        """
        A key with an attempt in progress is never dropped as expired, and
        a success of another attempt forgets its failures but not the
        attempt still in progress; once that ends, the key can expire.
        """
        for _ in range(3):
            self.throttle.begin("k")
        self.fail_times("k", 1)
        self.throttle.succeeded("k")
        self.assertEqual(len(self.throttle), 1)
        self.clock.advance(3600)
        self.throttle.failed("other")
        self.assertEqual(len(self.throttle), 2)
        self.throttle.ended("k")
        self.assertEqual(len(self.throttle), 1)

    def test_retry_after_drops_expired(self) -> None:
        """Asking about an expired key drops it."""
        self.throttle.failed("k")
        self.clock.advance(61)
        self.assertIsNone(self.throttle.retry_after("k"))
        self.assertEqual(len(self.throttle), 0)

    def test_table_cap(self) -> None:
        """
        The table never holds more than max_keys entries; the entry failed
        least recently is dropped first.
        """
        throttle = LoginThrottle(self.clock, max_keys=3, max_failures=2)
        for key in ("a", "b", "c"):
            throttle.failed(key)
        throttle.failed("a")  # locks a and makes it the most recent
        throttle.failed("d")  # drops b
        self.assertEqual(len(throttle), 3)
        self.assertIsNotNone(throttle.retry_after("a"))
        throttle.failed("b")
        self.assertIsNone(throttle.retry_after("b"))  # b started over
        for number in range(1000):
            throttle.failed(f"x{number}")
        self.assertEqual(len(throttle), 3)

    def test_default_cap(self) -> None:
        """With the defaults, the table stops at 10 000 keys."""
        for number in range(10_050):
            self.throttle.failed(f"10.0.{number // 256}.{number % 256}")
        self.assertEqual(len(self.throttle), 10_000)


class AddressKeyTests(SynchronousTestCase):
    """address_key."""

    def test_keys(self) -> None:
        """
        IPv4 addresses are their own key, IPv4-mapped IPv6 addresses count
        as their IPv4 address, other IPv6 addresses by their /64 network.
        """
        self.assertEqual(address_key("192.0.2.1"), "address:192.0.2.1")
        self.assertEqual(address_key("::ffff:192.0.2.1"), "address:192.0.2.1")
        self.assertEqual(address_key("2001:db8::1"), address_key("2001:db8::ffff:1"))
        self.assertNotEqual(address_key("2001:db8::1"), address_key("2001:db8:0:1::1"))
        self.assertEqual(address_key("not an ip"), "address:not an ip")


def login_events(events: Sequence[LogEvent]) -> list[LogEvent]:
    return [e for e in events if "reason" in e and "user" in e]


class AuthenticatorTests(TempDirMixin, SynchronousTestCase):
    """Authenticator."""

    def setUp(self) -> None:
        self.path = self.make_path()
        write_credentials(
            self.path, {"alice": fast_hash("alice-pw"), "bob": fast_hash("bob-pw")}
        )
        self.clock = Clock()
        self.runner = CountingRunner()
        self.authenticator = Authenticator.from_file(
            self.path, self.clock, run=self.runner
        )

    def login(
        self, name: str, password: str, address: str | None = "192.0.2.1"
    ) -> Deferred[Operator]:
        return self.authenticator.login(name, password, address)

    def refused(self, result: Deferred[Operator]) -> str:
        message: str = self.failureResultOf(result, LoginFailed).value.message
        return message

    def name_of(self, result: Deferred[Operator]) -> str:
        """
        The name of the avatar a successful login fired with, after checking
        that the avatar provides IOperator.
        """
        avatar = self.successResultOf(result)
        self.assertTrue(IOperator.providedBy(avatar))
        return avatar.name

    def test_success(self) -> None:
        """
        The right password fires with an IOperator avatar holding the user
        name.
        """
        self.assertEqual(self.name_of(self.login("alice", "alice-pw")), "alice")

    def test_success_gives_realm_avatar(self) -> None:
        """
        A login fires with the very avatar the portal's realm gave: an
        Operator for the user name, providing IOperator.
        """
        realm = RecordingRealm()
        checker = CredentialsFileChecker(self.path, run=self.runner)
        authenticator = Authenticator(Portal(realm, [checker]), self.clock)
        avatar = self.successResultOf(authenticator.login("bob", "bob-pw", None))
        self.assertEqual(len(realm.avatars), 1)
        self.assertIs(avatar, realm.avatars[0])
        self.assertIsInstance(avatar, Operator)
        self.assertEqual(avatar, Operator("bob"))
        self.assertTrue(verifyObject(IOperator, avatar))

    def test_success_logged(self) -> None:
        """A success is logged with the user, the address and a reason."""
        with capturedLogs() as events:
            self.successResultOf(self.login("alice", "alice-pw"))
        [event] = login_events(events)
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(
            (event["user"], event["address"], event["reason"]),
            ("alice", "192.0.2.1", "ok"),
        )
        self.assertIn("succeeded", formatEvent(event))

    def test_wrong_password_and_unknown_user(self) -> None:
        """
        A wrong password and an unknown user get the same message, "login
        failed", and each is logged with its reason.
        """
        with capturedLogs() as events:
            wrong = self.refused(self.login("alice", "nope"))
            unknown = self.refused(self.login("mallory", "nope"))
        self.assertEqual(wrong, LOGIN_FAILED)
        self.assertEqual(unknown, LOGIN_FAILED)
        self.assertEqual(LOGIN_FAILED, "login failed")
        logged = login_events(events)
        self.assertEqual(
            [(e["user"], e["address"], e["reason"]) for e in logged],
            [
                ("alice", "192.0.2.1", "wrong password"),
                ("mallory", "192.0.2.1", "unknown user"),
            ],
        )
        self.assertTrue(all(e["log_level"] == LogLevel.warn for e in logged))

    def test_throttled_by_user(self) -> None:
        """
        After 5 failures for one name (from any addresses), further attempts
        for it are refused with the time to wait, without checking the
        password, even the right one; after the lockout it works again.
        """
        for number in range(5):
            self.refused(self.login("alice", "nope", f"192.0.2.{number}"))
        calls = self.runner.calls
        with capturedLogs() as events:
            message = self.refused(self.login("alice", "alice-pw", "198.51.100.7"))
        self.assertEqual(message, "too many failed logins; try again in 60 s")
        self.assertEqual(self.runner.calls, calls)
        [event] = login_events(events)
        self.assertEqual(event["reason"], "throttled")
        self.clock.advance(45.2)
        message = self.refused(self.login("alice", "alice-pw", "198.51.100.7"))
        self.assertEqual(message, "too many failed logins; try again in 15 s")
        self.assertEqual(self.name_of(self.login("bob", "bob-pw")), "bob")
        self.clock.advance(15)
        self.assertEqual(self.name_of(self.login("alice", "alice-pw")), "alice")

    def test_throttled_by_address(self) -> None:
        """
        After 5 failures from one address (for any names), that address is
        refused for every name; other addresses are not.
        """
        for name in ("a1", "a2", "a3", "a4", "alice"):
            self.refused(self.login(name, "nope", "203.0.113.9"))
        self.assertIn(
            "too many failed logins",
            self.refused(self.login("bob", "bob-pw", "203.0.113.9")),
        )
        self.assertEqual(
            self.name_of(self.login("bob", "bob-pw", "203.0.113.10")), "bob"
        )

    def test_throttled_ipv6_network(self) -> None:
        """Failures from one IPv6 /64 count together."""
        for number in range(1, 6):
            self.refused(self.login(f"u{number}", "nope", f"2001:db8::{number}"))
        self.assertIn(
            "too many failed logins",
            self.refused(self.login("bob", "bob-pw", "2001:db8::99")),
        )

    def test_success_clears_user_not_address(self) -> None:
        """
        A success forgets the failures of the user name, but not those of
        the address, so logging in to one's own account does not reset the
        address's count.
        """
        for _ in range(4):
            self.refused(self.login("alice", "nope", "192.0.2.50"))
        self.successResultOf(self.login("alice", "alice-pw", "192.0.2.60"))
        for number in range(4):
            self.refused(self.login("alice", "nope", f"192.0.2.{70 + number}"))
        self.successResultOf(self.login("alice", "alice-pw", "192.0.2.99"))

        for _ in range(4):
            self.refused(self.login("bob", "nope", "198.51.100.1"))
        self.successResultOf(self.login("alice", "alice-pw", "198.51.100.1"))
        self.refused(self.login("carol", "nope", "198.51.100.1"))
        self.assertIn(
            "too many", self.refused(self.login("alice", "alice-pw", "198.51.100.1"))
        )

    def test_parallel_attempts_counted_when_they_start(self) -> None:
        """
        Logins that start together, before any password check has ended
        (16 connections from one address at once), get no more guesses than
        the limit: only 5 reach the checker, the others are refused at once
        as throttled; once those 5 have failed the address is locked out.
        """
        runner = HeldRunner()
        authenticator = Authenticator.from_file(self.path, self.clock, run=runner)
        attempts = [
            authenticator.login(f"user{number}", "guess", "203.0.113.5")
            for number in range(16)
        ]
        self.assertEqual(len(runner.held), 5)
        for refused in attempts[5:]:
            self.assertIn("too many", self.refused(refused))
        runner.release()
        for attempt in attempts[:5]:
            self.assertEqual(self.refused(attempt), LOGIN_FAILED)
        message = self.refused(authenticator.login("alice", "alice-pw", "203.0.113.5"))
        self.assertEqual(message, "too many failed logins; try again in 60 s")
        self.assertEqual(runner.held, [])

    def test_parallel_attempts_for_one_name(self) -> None:
        """
        Parallel guesses at one user name from many addresses are limited
        the same way; an attempt in progress that succeeds frees its place.
        """
        runner = HeldRunner()
        authenticator = Authenticator.from_file(self.path, self.clock, run=runner)
        first = authenticator.login("alice", "alice-pw", "192.0.2.1")
        guesses = [
            authenticator.login("alice", "guess", f"198.51.100.{number}")
            for number in range(10)
        ]
        self.assertEqual(len(runner.held), 5)
        for refused in guesses[4:]:
            self.assertIn("try again in 1 s", self.refused(refused))
        runner.release()
        self.assertEqual(self.name_of(first), "alice")
        for guess in guesses[:4]:
            self.assertEqual(self.refused(guess), LOGIN_FAILED)
        self.assertEqual(self.name_of(self.login("bob", "bob-pw")), "bob")

    def test_no_address(self) -> None:
        """
        A client without an address (UNIX socket) is throttled by user
        name only.
        """
        for _ in range(5):
            self.refused(self.login("alice", "nope", None))
        self.assertIn("too many", self.refused(self.login("alice", "alice-pw", None)))
        self.assertEqual(self.name_of(self.login("bob", "bob-pw", None)), "bob")

    def test_password_never_logged(self) -> None:
        """
        No logged event, in its fields or its text, contains the password:
        for a success, a wrong password, an unknown user, a throttled
        attempt, a malformed stored hash, or an unexpected error.
        """
        secret = "S3cret-Pa55"
        with capturedLogs() as events:
            update_credentials(self.path, "carol", fast_hash(secret))
            self.successResultOf(self.login("carol", secret))
            self.refused(self.login("alice", secret))
            self.refused(self.login("nobody", secret))
            for _ in range(5):
                self.refused(self.login("bob", secret, "192.0.2.77"))
            self.refused(self.login("bob", secret, "192.0.2.77"))
            update_credentials(self.path, "dave", secret)
            self.refused(self.login("dave", secret))
            broken = Authenticator(
                make_portal(BrokenChecker()), self.clock, LoginThrottle(self.clock)
            )
            self.refused(broken.login("carol", secret, "192.0.2.1"))
        self.flushLoggedErrors(RuntimeError)
        self.assertGreater(len(login_events(events)), 8)
        for event in events:
            self.assertNotIn(secret, formatEvent(event))
            for key, value in event.items():
                if key == "log_failure":
                    value = value.getTraceback()
                self.assertNotIn(secret, repr(value), key)

    def test_unexpected_error(self) -> None:
        """
        An error other than bad credentials is logged as a failure, does not
        count toward throttling, and still reads "login failed".
        """
        throttle = LoginThrottle(self.clock)
        broken = Authenticator(make_portal(BrokenChecker()), self.clock, throttle)
        with capturedLogs() as events:
            message = self.refused(broken.login("alice", "pw", "192.0.2.1"))
        self.assertEqual(message, LOGIN_FAILED)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(login_events(events)[-1]["reason"], "error")
        self.assertEqual(len(throttle), 0)

    def test_hostile_name_logged_safely(self) -> None:
        """
        A user name with line breaks or control characters is logged in an
        escaped form, so it cannot forge log lines.
        """
        with capturedLogs() as events:
            self.refused(self.login("x\nlogin of root succeeded", "nope"))
        [event] = login_events(events)
        self.assertNotIn("\n", formatEvent(event))
        self.assertEqual(event["user"], repr("x\nlogin of root succeeded"))

    def test_long_name_bounded(self) -> None:
        """A very long user name fails normally and keeps a short throttle key."""
        self.refused(self.login("x" * 10_000, "nope"))
        throttle = self.authenticator.throttle
        self.assertTrue(all(len(key) < 64 for key in throttle._entries))

    def test_default_throttle(self) -> None:
        """Without a throttle, the authenticator makes one with its clock."""
        authenticator = Authenticator(make_portal(BrokenChecker()), self.clock)
        self.assertIs(authenticator.throttle.clock, self.clock)
        self.assertEqual(authenticator.throttle.max_failures, 5)

    def test_missing_file(self) -> None:
        """With no credentials file, every login fails as "login failed"."""
        authenticator = Authenticator.from_file(
            os.path.join(self.make_dir(), "absent"), self.clock, run=self.runner
        )
        with capturedLogs():
            result = authenticator.login("alice", "alice-pw", "192.0.2.1")
        self.assertEqual(self.refused(result), LOGIN_FAILED)


class RecordingRealm(OperatorRealm):
    """An OperatorRealm that keeps every avatar it gives."""

    def __init__(self) -> None:
        self.avatars: list[object] = []

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, object, Callable[[], None]]:
        result = super().requestAvatar(avatarId, mind, *interfaces)
        self.avatars.append(result[1])
        return result


@implementer(ICredentialsChecker)
class BrokenChecker:
    """A checker that fails with an unexpected error."""

    credentialInterfaces = CredentialsFileChecker.credentialInterfaces

    def requestAvatarId(self, credentials: object) -> Deferred[bytes | tuple[()]]:
        return fail(RuntimeError("database on fire"))
