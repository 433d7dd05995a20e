"""
``chatservice-passwd``: add, change, delete and list the users of a
credentials file (``docs/credentials.rst``)::

    chatservice-passwd [--file FILE] NAME             # asks the password twice
    chatservice-passwd [--file FILE] --stdin NAME     # first line of stdin
    chatservice-passwd [--file FILE] --delete NAME
    chatservice-passwd [--file FILE] --list

``FILE`` defaults to ``chatservice.passwd`` in the current directory; it is
created (mode 0600) when missing and always rewritten atomically, keeping its
comments.  Passwords have at least :data:`MIN_PASSWORD_LENGTH` characters.

Exit status: 0 done, 1 error (one line on stderr), 2 wrong usage.
:func:`main` takes the arguments (``None``: ``sys.argv[1:]``) and returns the
exit status; ``ln`` lets tests hash cheaply.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from getpass import getpass

from chatservice.auth import (
    DEFAULT_LN,
    InvalidNameError,
    check_name,
    hash_password,
    read_credentials,
    update_credentials,
)

PROG = "chatservice-passwd"

#: The credentials file used when ``--file`` is not given.
DEFAULT_FILE = "chatservice.passwd"

#: Shortest password accepted, in characters.
MIN_PASSWORD_LENGTH = 8


class CommandError(Exception):
    """Something went wrong: the message is printed and the status is 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Add or change (NAME), delete (--delete NAME) or list (--list) the "
            "users of a chatservice credentials file. Passwords are stored as "
            "scrypt hashes, never in plain text."
        ),
        epilog="Exit status: 0 done, 1 error, 2 wrong usage.",
    )
    parser.add_argument(
        "--file",
        "-f",
        default=DEFAULT_FILE,
        metavar="FILE",
        help=f"credentials file (default: {DEFAULT_FILE} in the current directory)",
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from the first line of standard input, no prompt",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--delete", "-d", metavar="NAME", help="delete user NAME")
    action.add_argument("--list", "-l", action="store_true", help="print the names")
    parser.add_argument(
        "name", nargs="?", metavar="NAME", help="user whose password to set"
    )
    return parser


def _read_password(from_stdin: bool) -> str:
    """The new password: prompted twice, or the first line of stdin."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CommandError("no password on standard input")
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        try:
            password = getpass("Password: ")
            _check_password(password)
            again = getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt):
            raise CommandError("cancelled; nothing changed") from None
        if again != password:
            raise CommandError("the passwords do not match; nothing changed")
    _check_password(password)
    return password


def _check_password(password: str) -> None:
    if not password:
        raise CommandError("the password is empty; nothing changed")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CommandError(
            f"the password is too short (at least {MIN_PASSWORD_LENGTH} "
            "characters); nothing changed"
        )


def _name(text: str) -> str:
    try:
        return check_name(text)
    except InvalidNameError as error:
        raise CommandError(f"invalid user name {text!r}: {error}") from None


def _run(args: argparse.Namespace, ln: int) -> str | None:
    """Do what the arguments say; return what to print, if anything."""
    path: str = args.file
    if args.list:
        try:
            names = read_credentials(path)
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        return "".join(f"{name}\n" for name in names)
    if args.delete is not None:
        name = _name(args.delete)
        try:
            users = read_credentials(path)
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        if name not in users:
            raise CommandError(f"no user {name} in {path}")
        update_credentials(path, name, None)
        return f"deleted {name} from {path}\n"
    name = _name(args.name)
    # Refuse a file that cannot be updated before asking for a password.
    with contextlib.suppress(FileNotFoundError):
        read_credentials(path)
    password = _read_password(args.stdin)
    replaced = update_credentials(path, name, hash_password(password, ln=ln))
    if replaced:
        return f"changed the password of {name} in {path}\n"
    return f"added {name} to {path}\n"


def main(argv: Sequence[str] | None = None, *, ln: int = DEFAULT_LN) -> int:
    """Run ``chatservice-passwd`` and return its exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        # --help (0) or a usage error (2), already printed by argparse.
        return stop.code if isinstance(stop.code, int) else 2
    if args.list or args.delete is not None:
        if args.name is not None:
            parser.print_usage(sys.stderr)
            print(
                f"{PROG}: error: NAME cannot go with --list or --delete",
                file=sys.stderr,
            )
            return 2
        if args.stdin:
            parser.print_usage(sys.stderr)
            print(f"{PROG}: error: --stdin only goes with NAME", file=sys.stderr)
            return 2
    elif args.name is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: give NAME, --delete NAME or --list", file=sys.stderr)
        return 2
    try:
        output = _run(args, ln)
    except (CommandError, ValueError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"{PROG}: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    if output:
        sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
