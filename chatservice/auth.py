"""
Who may administer the chat: password hashing, the credentials file, a
``twisted.cred`` checker, realm and portal, and login throttling.

The admin console and the chat's ``/oper NAME PASSWORD`` command share one
credentials file (``docs/credentials.rst``), edited with
``chatservice-passwd`` (:mod:`chatservice.passwd`).  It is text, one user a
line, ``NAME:ENCODED_HASH``, with ``#`` comments and blank lines.

Passwords are never stored: only their scrypt hash, encoded as::

    scrypt$ln=14,r=8,p=1$<salt>$<hash>

where ``ln`` is log2 of scrypt's cost ``N``, ``r`` the block size and ``p``
the parallelism; salt (16 random bytes) and hash (32 bytes) are in standard
base64 without ``=`` padding (as in the PHC string format).  Each hash keeps
its own parameters, so the defaults can be raised later and old entries keep
working until their password is next set.  Passwords are NFC-normalized and
UTF-8 encoded before hashing.

The public API:

- :func:`hash_password`, :func:`verify_password` (never raises; ``False``
  for a malformed hash), :func:`parse_hash` (raises :class:`MalformedHashError`);
- :func:`check_name` (raises :class:`InvalidNameError`), :func:`valid_name`:
  user names have 1 to 32 characters, none of them ``:``, whitespace or
  control characters, and do not start with ``#``;
- :func:`read_credentials`, :func:`write_credentials` and
  :func:`update_credentials` (adds, replaces or deletes one user, keeping
  comments); writes are atomic and leave the file with mode 0600; a line
  that is not ``NAME:HASH`` raises :class:`CredentialsFileError`;
- :class:`CredentialsFileChecker`: an ``ICredentialsChecker`` for
  ``IUsernamePassword`` that re-reads the file when it changes and hashes off
  the reactor thread;
- :class:`IOperator`, :class:`Operator`, :class:`OperatorRealm` and
  :func:`make_portal`;
- :class:`LoginThrottle`: refuses logins for a while after repeated failures
  from one address or for one user name;
- :class:`Authenticator`: what the front ends call; ``login()`` fires with
  the user name or fails with :class:`LoginFailed`, whose message can be shown
  to the client as is.  (It is not ``twisted.cred.error.LoginFailed``: that
  one stays inside the portal.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import math
import os
import re
import secrets
import tempfile
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

# Hashing

#: Default scrypt cost, as log2(N): N = 16384.  With r = 8 this takes 16 MiB
#: and about 30-45 ms per hash on the development machine.
DEFAULT_LN = 14
#: Default scrypt block size.
DEFAULT_R = 8
#: Default scrypt parallelism.
DEFAULT_P = 1
#: Bytes of random salt in each new hash.
SALT_BYTES = 16
#: Bytes of derived key stored in each new hash.
HASH_BYTES = 32
#: Memory a stored hash may ask for: a hand-edited file cannot make the
#: server allocate more than this per login attempt.
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024

_ENCODED = re.compile(
    r"scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,3}),p=([0-9]{1,2})"
    r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)",
    re.ASCII,
)


class MalformedHashError(ValueError):
    """A stored password hash that this module cannot read."""


@dataclass(frozen=True)
class ScryptHash:
    """A parsed encoded hash: the parameters, the salt and the derived key."""

    ln: int
    r: int
    p: int
    salt: bytes
    hash: bytes


def _scrypt_memory(ln: int, r: int, p: int) -> int:
    """Bytes OpenSSL's scrypt needs for these parameters."""
    return 128 * r * ((1 << ln) + 2) + 128 * r * p


def _check_parameters(ln: int, r: int, p: int) -> None:
    if not 1 <= ln <= 31:
        raise ValueError(f"scrypt ln must be 1 to 31, not {ln}")
    if not 1 <= r <= 64:
        raise ValueError(f"scrypt r must be 1 to 64, not {r}")
    if not 1 <= p <= 16:
        raise ValueError(f"scrypt p must be 1 to 16, not {p}")
    if _scrypt_memory(ln, r, p) > MAX_SCRYPT_MEMORY:
        raise ValueError(
            f"scrypt ln={ln}, r={r} needs more than "
            f"{MAX_SCRYPT_MEMORY // 2**20} MiB of memory"
        )


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _password_bytes(password: str) -> bytes:
    # surrogatepass: a password that is not valid Unicode still hashes (and
    # never matches) instead of raising.
    return unicodedata.normalize("NFC", password).encode("utf-8", "surrogatepass")


def _scrypt(password: bytes, salt: bytes, ln: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(
        password,
        salt=salt,
        n=1 << ln,
        r=r,
        p=p,
        maxmem=_scrypt_memory(ln, r, p) + 2**20,
        dklen=size,
    )


def _encode(parsed: ScryptHash) -> str:
    return (
        f"scrypt$ln={parsed.ln},r={parsed.r},p={parsed.p}"
        f"${_b64encode(parsed.salt)}${_b64encode(parsed.hash)}"
    )


def hash_password(
    password: str, *, ln: int = DEFAULT_LN, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """
    Hash a password with scrypt and a fresh random salt, and return the
    encoded hash (``scrypt$ln=14,r=8,p=1$SALT$HASH``).  Tests pass a small
    ``ln`` to stay fast.  Raises ``ValueError`` for parameters out of range.
    """
    _check_parameters(ln, r, p)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(_password_bytes(password), salt, ln, r, p, HASH_BYTES)
    return _encode(ScryptHash(ln, r, p, salt, key))


def parse_hash(encoded: str) -> ScryptHash:
    """Read an encoded hash, or raise :class:`MalformedHashError` saying why not."""
    match = _ENCODED.fullmatch(encoded)
    if match is None:
        raise MalformedHashError("not of the form scrypt$ln=L,r=R,p=P$SALT$HASH")
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    try:
        _check_parameters(ln, r, p)
    except ValueError as error:
        raise MalformedHashError(str(error)) from None
    try:
        salt = _b64decode(match.group(4))
        key = _b64decode(match.group(5))
    except (binascii.Error, ValueError):
        raise MalformedHashError("salt or hash is not valid base64") from None
    if not 8 <= len(salt) <= 1024:
        raise MalformedHashError(f"salt has {len(salt)} bytes (8 to 1024 allowed)")
    if not 16 <= len(key) <= 64:
        raise MalformedHashError(f"hash has {len(key)} bytes (16 to 64 allowed)")
    return ScryptHash(ln, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """
    Whether a password matches an encoded hash, compared in constant time.
    Never raises: a malformed hash gives ``False`` (the checker logs it).
    """
    try:
        parsed = parse_hash(encoded)
    except MalformedHashError:
        return False
    key = _scrypt(
        _password_bytes(password),
        parsed.salt,
        parsed.ln,
        parsed.r,
        parsed.p,
        len(parsed.hash),
    )
    return hmac.compare_digest(key, parsed.hash)


def _dummy_hash(like: ScryptHash | None) -> str:
    """
    An encoded hash that no password matches, costing as much to verify as
    ``like`` (or a default hash): what unknown users are checked against.
    """
    ln, r, p = (like.ln, like.r, like.p) if like else (DEFAULT_LN, DEFAULT_R, DEFAULT_P)
    size = len(like.hash) if like else HASH_BYTES
    salt = secrets.token_bytes(SALT_BYTES)
    return _encode(ScryptHash(ln, r, p, salt, secrets.token_bytes(size)))


# User names and the credentials file

#: Longest user name, in characters.
MAX_NAME_LENGTH = 32

#: Mode of the credentials file: readable and writable by its owner only.
FILE_MODE = 0o600

#: First lines of a new credentials file.
FILE_HEADER = (
    "# chatservice credentials: one user a line, NAME:ENCODED_HASH.\n"
    "# Edit with chatservice-passwd; passwords are stored as scrypt hashes.\n"
)


class InvalidNameError(ValueError):
    """A user name the credentials file cannot hold."""


class CredentialsFileError(ValueError):
    """A credentials file that cannot be read: the message says where."""


def check_name(name: str) -> str:
    """
    Return a user name in the form it is stored and looked up (NFC), or raise
    :class:`InvalidNameError` saying what is wrong with it.
    """
    name = unicodedata.normalize("NFC", name)
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidNameError(f"a user name has 1 to {MAX_NAME_LENGTH} characters")
    if name.startswith("#"):
        raise InvalidNameError("a user name cannot start with #")
    for char in name:
        if char == ":":
            raise InvalidNameError("a user name cannot contain ':'")
        category = unicodedata.category(char)
        if char.isspace() or category[0] in "CZ":
            raise InvalidNameError(
                "a user name cannot contain spaces or control characters "
                f"(found U+{ord(char):04X})"
            )
    return name


def valid_name(name: str) -> bool:
    """Whether :func:`check_name` accepts a user name."""
    try:
        check_name(name)
    except InvalidNameError:
        return False
    return True


def _check_encoded(name: str, encoded: str) -> None:
    if not encoded or any(
        c.isspace() or unicodedata.category(c)[0] == "C" for c in encoded
    ):
        raise ValueError(f"the hash of {name!r} is empty or has blanks in it")


@dataclass
class _Line:
    """One line of a credentials file: a user, or text kept as it is."""

    text: str
    name: str | None = None
    encoded: str = ""


def _parse(path: str, text: str) -> list[_Line]:
    lines = []
    seen: set[str] = set()
    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.removesuffix("\r")
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            lines.append(_Line(raw))
            continue
        name, colon, encoded = stripped.partition(":")
        where = f"{path}, line {number}"
        if not colon:
            raise CredentialsFileError(f"{where}: expected NAME:HASH")
        try:
            name = check_name(name)
        except InvalidNameError as error:
            raise CredentialsFileError(f"{where}: {error}") from None
        if name in seen:
            raise CredentialsFileError(f"{where}: user {name} appears twice")
        seen.add(name)
        lines.append(_Line(raw, name, encoded.strip()))
    if lines and not lines[-1].text and lines[-1].name is None:
        lines.pop()  # what follows the last newline
    return lines


def _read_lines(path: str) -> list[_Line]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CredentialsFileError(f"{path}: not UTF-8 (byte {error.start})") from None
    return _parse(path, text)


def read_credentials(path: str | os.PathLike[str]) -> dict[str, str]:
    """
    Read a credentials file: user name to encoded hash, in file order.
    Raises ``OSError`` (``FileNotFoundError`` for a missing file) and
    :class:`CredentialsFileError` for a line that is not ``NAME:HASH`` with a
    valid, unique name.  Hashes are not checked here (see :func:`parse_hash`).
    """
    return {
        line.name: line.encoded
        for line in _read_lines(os.fspath(path))
        if line.name is not None
    }


def _write_atomically(path: str, text: str) -> None:
    """
    Replace a file's content at once: a reader sees the old file or the new
    one, never half of one.  The new file has mode 0600 and, when the caller
    is root, the owner and group of the file it replaces.
    """
    path = os.path.realpath(path)
    directory, base = os.path.split(path)
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            if old is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), old.st_uid, old.st_gid)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable (best effort: not every system can).
    with contextlib.suppress(OSError):
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


def write_credentials(path: str | os.PathLike[str], users: Mapping[str, str]) -> None:
    """
    Write a whole credentials file (user name to encoded hash) atomically,
    with mode 0600.  Raises :class:`InvalidNameError` for a name the file cannot
    hold and ``ValueError`` for an empty hash or one with blanks.
    """
    lines = [FILE_HEADER]
    for name, encoded in users.items():
        stored = check_name(name)
        _check_encoded(name, encoded)
        lines.append(f"{stored}:{encoded}\n")
    _write_atomically(os.fspath(path), "".join(lines))


def update_credentials(
    path: str | os.PathLike[str], name: str, encoded: str | None
) -> bool:
    """
    Set one user's hash (``encoded``), or delete the user (``None``), keeping
    every other line and comment of the file as it is; the file is created
    if missing.  Returns whether the user was in the file before.  Raises as
    :func:`read_credentials` and :func:`write_credentials` do.
    """
    path = os.fspath(path)
    name = check_name(name)
    if encoded is not None:
        _check_encoded(name, encoded)
    try:
        lines = _read_lines(path)
    except FileNotFoundError:
        lines = [_Line(FILE_HEADER.rstrip("\n"))]
    existed = any(line.name == name for line in lines)
    if encoded is None:
        lines = [line for line in lines if line.name != name]
    elif existed:
        lines = [
            _Line(f"{name}:{encoded}", name, encoded) if line.name == name else line
            for line in lines
        ]
    else:
        lines.append(_Line(f"{name}:{encoded}", name, encoded))
    _write_atomically(path, "".join(line.text + "\n" for line in lines))
    return existed


# The checker

#: Runs a function off the reactor thread and gives its result.
Runner = Callable[[Callable[[], bool]], Deferred[bool]]


def _in_thread(function: Callable[[], bool]) -> Deferred[bool]:
    return deferToThread(function)


@implementer(ICredentialsChecker)
class CredentialsFileChecker:
    """
    Checks ``IUsernamePassword`` credentials against a credentials file.

    The file is looked at (``stat``) on every attempt and read again when
    its inode, size or modification time changed, so ``chatservice-passwd``
    takes effect without a restart.  A missing or unreadable file means that
    nobody can log in; that is logged once, when it happens.

    The scrypt verification runs through ``run`` (default:
    ``deferToThread``), never on the reactor thread.  An unknown user, or
    one whose stored hash is malformed, is checked against a random hash of
    the same cost, so the time taken does not tell which names exist; both
    fail with ``UnauthorizedLogin`` like a wrong password.  The avatar ID is
    the user name, UTF-8 encoded.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, path: str | os.PathLike[str], run: Runner | None = None) -> None:
        self.path = os.fspath(path)
        self._run: Runner = run if run is not None else _in_thread
        self._stamp: tuple[int, int, int, int] | None = None
        self._state: str | None = None
        self._users: dict[str, str] = {}
        self._malformed: set[str] = set()
        self._dummy = _dummy_hash(None)

    def users(self) -> dict[str, str]:
        """The users as last read, reading the file again if it changed."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._unusable("missing", "no credentials file {path}: nobody can log in")
            return self._users
        except OSError as error:
            self._unusable(
                f"error {error.strerror}",
                "cannot read credentials file {path}: {error}; nobody can log in",
                error=error.strerror,
            )
            return self._users
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if stamp != self._stamp:
            self._load(stamp)
        return self._users

    def _unusable(self, state: str, message: str, **fields: Any) -> None:
        self._users = {}
        self._malformed = set()
        self._stamp = None
        if state != self._state:
            self._state = state
            self.log.error(message, path=self.path, **fields)

    def _load(self, stamp: tuple[int, int, int, int]) -> None:
        try:
            users = read_credentials(self.path)
        except FileNotFoundError:
            self._unusable("missing", "no credentials file {path}: nobody can log in")
            return
        except OSError as error:
            self._unusable(
                f"error {error.strerror}",
                "cannot read credentials file {path}: {error}; nobody can log in",
                error=error.strerror,
            )
            return
        except CredentialsFileError as error:
            self._unusable(
                f"invalid {error}",
                "invalid credentials file: {error}; nobody can log in",
                error=str(error),
            )
            # Read it again only once it has changed.
            self._stamp = stamp
            return
        malformed = set()
        like = None
        for name, encoded in users.items():
            try:
                parsed = parse_hash(encoded)
            except MalformedHashError as error:
                malformed.add(name)
                self.log.error(
                    "credentials file {path}: malformed hash for {user} ({error}); "
                    "that user cannot log in",
                    path=self.path,
                    user=name,
                    error=str(error),
                )
            else:
                like = like or parsed
        self._users = users
        self._malformed = malformed
        self._stamp = stamp
        self._state = "loaded"
        self._dummy = _dummy_hash(like)
        self.log.info(
            "read credentials file {path}: {count} users",
            path=self.path,
            count=len(users),
        )

    def requestAvatarId(
        self, credentials: IUsernamePassword
    ) -> Deferred[bytes | tuple[()]]:
        """
        Fire with the user name (UTF-8) when the password matches, or fail
        with ``UnauthorizedLogin``.
        """
        users = self.users()
        try:
            name: str | None = unicodedata.normalize(
                "NFC", credentials.username.decode("utf-8")
            )
        except UnicodeDecodeError:
            name = None
        password = credentials.password.decode("utf-8", "surrogateescape")
        encoded = users.get(name) if name is not None else None
        if encoded is None:
            target, reason = self._dummy, "unknown user"
        elif name in self._malformed:
            target, reason = self._dummy, "malformed stored hash"
        else:
            target, reason = encoded, "wrong password"

        def check(matches: bool) -> bytes | tuple[()]:
            if matches and target is encoded and name is not None:
                return name.encode("utf-8")
            raise UnauthorizedLogin(reason)

        return self._run(lambda: verify_password(password, target)).addCallback(check)


# Realm and portal


class IOperator(Interface):
    """A user of the credentials file: a chat operator or an administrator."""

    name = Attribute("The user name, as in the credentials file (str).")


@implementer(IOperator)
@dataclass(frozen=True)
class Operator:
    """The avatar of a logged-in operator."""

    name: str


def _logout() -> None:
    """Nothing to clean up when an operator goes."""


@implementer(IRealm)
class OperatorRealm:
    """Gives an :class:`Operator` for each authenticated user name."""

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, object, Callable[[], None]]:
        if IOperator not in interfaces:
            raise NotImplementedError("OperatorRealm only gives IOperator avatars")
        if not isinstance(avatarId, bytes):
            raise NotImplementedError("OperatorRealm has no anonymous avatars")
        return IOperator, Operator(avatarId.decode("utf-8")), _logout


def make_portal(checker: ICredentialsChecker) -> Portal:
    """A portal to an :class:`OperatorRealm` guarded by ``checker``."""
    return Portal(OperatorRealm(), [checker])


# Throttling


@dataclass
class _Failures:
    times: deque[float]
    locked_until: float = 0.0


class LoginThrottle:
    """
    Counts failed logins per key (an address, a user name) and refuses a
    key for ``lockout`` seconds once it has ``max_failures`` failures within
    ``window`` seconds.

    Memory stays bounded: an entry is forgotten once it can no longer lock
    (its failures are older than ``window`` and its lockout is over), and
    the table holds at most ``max_keys`` entries; past that, the entry
    touched least recently goes first.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 60.0,
        max_keys: int = 10_000,
    ) -> None:
        if max_failures < 1 or max_keys < 1 or window < 0 or lockout < 0:
            raise ValueError(
                "max_failures and max_keys must be positive, window and lockout "
                "0 or more"
            )
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._entries: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        """How many keys the table holds."""
        return len(self._entries)

    def _expired(self, entry: _Failures, now: float) -> bool:
        return entry.locked_until <= now and (
            not entry.times or entry.times[-1] <= now - self.window
        )

    def _expire(self, now: float) -> None:
        # Entries are in the order they were last touched: stop at the first
        # live one (one touched later may, rarely, have expired already; it
        # goes in its turn).
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if not self._expired(entry, now):
                break
            del self._entries[key]

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or ``None`` if it may now."""
        now = self.clock.seconds()
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.locked_until > now:
            return entry.locked_until - now
        if self._expired(entry, now):
            del self._entries[key]
        return None

    def failed(self, key: str) -> None:
        """Count one failure for ``key``, locking it at the limit."""
        now = self.clock.seconds()
        self._expire(now)
        entry = self._entries.pop(key, None)
        if entry is None:
            while len(self._entries) >= self.max_keys:
                self._entries.popitem(last=False)
            entry = _Failures(deque(maxlen=self.max_failures))
        while entry.times and entry.times[0] <= now - self.window:
            entry.times.popleft()
        entry.times.append(now)
        if len(entry.times) >= self.max_failures:
            entry.locked_until = now + self.lockout
            entry.times.clear()
        self._entries[key] = entry

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key``."""
        self._entries.pop(key, None)


# What the front ends use


class LoginFailed(Exception):  # noqa: N818 (the name front ends know)
    """A refused login; ``message`` can be shown to the client as is."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds until the client may try again, when throttled.
        self.retry_after = retry_after


#: The message for a wrong password and for an unknown user alike.
LOGIN_FAILED = "login failed"


def address_key(address: str) -> str:
    """
    The throttling key of a client address: the address itself, or for
    IPv6 its /64 network (one host usually has a whole /64 to itself).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"address:{ip}"


def _printable(text: str | None) -> str | None:
    """A user name or address safe to put in a log line."""
    if text is None or (len(text) <= 64 and text.isprintable()):
        return text
    return ascii(text[:64])


class Authenticator:
    """
    Logs administrators and operators in: throttling, then the portal.

    Each failure is counted against the client's address (IPv6: its /64) and,
    separately, against the user name; either one being throttled refuses the
    attempt without checking the password.  A success forgets the user
    name's failures but not the address's, so an attacker cannot clear its
    count by logging in to an account of its own.

    Every success and failure is logged with the fields ``user``, ``address``
    and ``reason``; never the password.  Front ends should allow one pending
    login per connection.
    """

    log = Logger()

    def __init__(
        self, portal: Portal, clock: IReactorTime, throttle: LoginThrottle | None = None
    ) -> None:
        self.portal = portal
        self.clock = clock
        self.throttle = throttle if throttle is not None else LoginThrottle(clock)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        clock: IReactorTime,
        throttle: LoginThrottle | None = None,
        *,
        run: Runner | None = None,
    ) -> Authenticator:
        """An authenticator for the users of a credentials file."""
        return cls(make_portal(CredentialsFileChecker(path, run)), clock, throttle)

    def login(self, username: str, password: str, address: str | None) -> Deferred[str]:
        """
        Fire with the user name once the password is right, or fail with
        :class:`LoginFailed`: "login failed" for a wrong password or an
        unknown user, "too many failed logins; try again in N s" when
        throttled.
        """
        # No valid name is longer; a longer one must not take memory.
        name = unicodedata.normalize("NFC", username[: MAX_NAME_LENGTH * 4])
        keys = [f"user:{name[: MAX_NAME_LENGTH + 1]}"]
        if address is not None:
            keys.append(address_key(address))
        waits = [w for w in map(self.throttle.retry_after, keys) if w is not None]
        if waits:
            wait = max(waits)
            self._failed(username, address, "throttled")
            seconds = max(1, math.ceil(wait))
            return fail(
                LoginFailed(f"too many failed logins; try again in {seconds} s", wait)
            )
        credentials = UsernamePassword(
            username.encode("utf-8", "surrogatepass"),
            password.encode("utf-8", "surrogatepass"),
        )
        attempt = self.portal.login(credentials, None, IOperator)

        def succeeded(result: tuple[Any, Any, Callable[[], None]]) -> str:
            user: str = result[1].name
            self.throttle.succeeded(keys[0])
            self.log.info(
                "login of {user} from {address} succeeded",
                user=_printable(user),
                address=_printable(address),
                reason="ok",
            )
            return user

        def failed(reason: Failure) -> str:
            if reason.check(UnauthorizedLogin):
                for key in keys:
                    self.throttle.failed(key)
                why = str(reason.value) or "unauthorized"
            else:
                self.log.failure(
                    "login of {user} from {address}: unexpected error",
                    reason,
                    user=_printable(username),
                    address=_printable(address),
                )
                why = "error"
            self._failed(username, address, why)
            raise LoginFailed(LOGIN_FAILED)

        return attempt.addCallbacks(succeeded, failed)

    def _failed(self, username: str, address: str | None, reason: str) -> None:
        self.log.warn(
            "login of {user} from {address} failed: {reason}",
            user=_printable(username),
            address=_printable(address),
            reason=reason,
        )
