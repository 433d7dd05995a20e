"""
User names and the credentials file (``docs/credentials.rst``).

The file is text in UTF-8, one user a line, ``NAME:ENCODED_HASH``, with
``#`` comments and blank lines.  User names have 1 to 32 characters, none of
them ``:``, whitespace or control characters, and do not start with ``#``
(:func:`check_name` raises :class:`InvalidNameError`; :func:`valid_name`).

:func:`read_credentials`, :func:`write_credentials` and
:func:`update_credentials` (adds, replaces or deletes one user, keeping
comments) read and write it; writes are atomic and leave a new file with
mode 0600, and a file they replace with its group and its group's read
permission (0640 stays 0640: the service reads the file through its group),
never more; a line that is not ``NAME:HASH`` raises
:class:`CredentialsFileError`.
Hashes are not checked here (see :mod:`chatservice.auth.hashing`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

#: Longest user name, in characters.
MAX_NAME_LENGTH = 32

#: Mode of a new credentials file: readable and writable by its owner only.
FILE_MODE = 0o600
#: What a rewrite keeps of the mode of the file it replaces: read by its
#: group (``chown root:chatservice`` and ``chmod 0640``).
KEPT_MODE = stat.S_IRGRP

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


def _keep_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """Give a new file the owner, group and group-read bit of ``old``."""
    owner = old.st_uid if os.geteuid() == 0 else -1
    with contextlib.suppress(PermissionError):
        # Not root: allowed for a group the caller is a member of.
        os.fchown(fd, owner, old.st_gid)
    if os.fstat(fd).st_gid == old.st_gid:
        os.fchmod(fd, FILE_MODE | (stat.S_IMODE(old.st_mode) & KEPT_MODE))


def _write_atomically(path: str, text: str) -> None:
    """
    Replace a file's content at once: a reader sees the old file or the new
    one, never half of one.  The new file has mode 0600; replacing a file,
    it keeps that file's group (its owner too, when the caller is root) and
    its group's read permission, but only when the group could be kept: a
    file readable by another group than before would give it away.
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
            if old is not None:
                _keep_owner_and_mode(f.fileno(), old)
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
    with mode 0600 (or the group and group-read bit of the file it
    replaces).  Raises :class:`InvalidNameError` for a name the file cannot
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
