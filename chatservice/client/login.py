"""
``chatservice-client --admin``: the admin console's first line, ``login
NAME PASSWORD``, from the options or asked for (the password without echo)
before the reactor starts.
"""

from __future__ import annotations

import getpass
import os
import sys
import warnings
from collections.abc import Callable


def read_line_from_fd(fd: int = 0) -> str | None:
    """
    One line from a file descriptor, read a byte at a time so that nothing
    after it is taken from the input the session will read.  ``None`` at
    end of input.
    """
    data = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte:
            return data.decode("utf-8", errors="replace") if data else None
        if byte == b"\n":
            return data.decode("utf-8", errors="replace").rstrip("\r")
        data += byte


class LoginError(Exception):
    """The admin credentials cannot be used; the message says why."""


def check_user(name: str) -> str:
    """An admin user name: not empty, no blank inside."""
    name = name.strip()
    if not name or any(char.isspace() for char in name):
        raise LoginError(f"invalid user name {name!r}")
    return name


def check_password(password: str) -> str:
    """An admin password: not empty, on one line."""
    if not password:
        raise LoginError("empty password")
    if any(char in password for char in "\r\n\0"):
        raise LoginError("the password must be on one line")
    return password


def read_password_file(path: str) -> str:
    """The first line of a password file, without its terminator."""
    try:
        with open(path, "rb") as file:
            first = file.readline()
    except OSError as problem:
        raise LoginError(
            f"cannot read password file {path!r}: {problem.strerror or problem}"
        ) from None
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise LoginError(f"password file {path!r} is not UTF-8") from None
    return text.rstrip("\r\n")


def login_line(user: str, password: str) -> bytes:
    """The admin console's first line."""
    return f"login {check_user(user)} {check_password(password)}".encode()


def ask_credentials(
    user: str | None,
    password_file: str | None,
    *,
    ask_user: Callable[[], str | None] | None = None,
    ask_password: Callable[[], str] | None = None,
) -> bytes:
    """
    Build the login line, asking what the options do not give.  Runs before
    the reactor: asking blocks.
    """
    if user is None:
        if ask_user is None:
            ask_user = _ask_user
        user = ask_user()
        if user is None:
            raise LoginError("no user name given")
    user = check_user(user)
    if password_file is not None:
        password = read_password_file(password_file)
    else:
        if ask_password is None:
            ask_password = _ask_password
        password = ask_password()
    return login_line(user, password)


def _ask_user() -> str | None:
    sys.stderr.write("Username: ")
    sys.stderr.flush()
    return read_line_from_fd(0)


def _ask_password() -> str:
    with warnings.catch_warnings():
        # Without a terminal getpass would read (and echo) standard input.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass("Password: ")
        except getpass.GetPassWarning:
            raise LoginError(
                "no terminal to ask the password; use --password-file"
            ) from None
