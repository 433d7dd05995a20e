"""
Who may administer the chat: password hashing, the credentials file, a
``twisted.cred`` checker, realm and portal, and login throttling.

The admin console and the chat's ``/oper NAME PASSWORD`` command share one
credentials file (``docs/credentials.rst``), edited with
``chatservice-passwd`` (:mod:`chatservice.passwd`).  It is text, one user a
line, ``NAME:ENCODED_HASH``, with ``#`` comments and blank lines.
Passwords are never stored: only their scrypt hash.

The modules, whose public names are all importable from here:

- :mod:`~chatservice.auth.hashing`: :func:`hash_password`,
  :func:`verify_password` (never raises; ``False`` for a malformed hash),
  :func:`parse_hash` (raises :class:`MalformedHashError`), and the encoded
  hash format;
- :mod:`~chatservice.auth.credentials`: :func:`check_name` (raises
  :class:`InvalidNameError`), :func:`valid_name`, :func:`read_credentials`,
  :func:`write_credentials` and :func:`update_credentials` (adds, replaces
  or deletes one user, keeping comments); writes are atomic and leave the
  file with mode 0600; a line that is not ``NAME:HASH`` raises
  :class:`CredentialsFileError`;
- :mod:`~chatservice.auth.checker`: :class:`CredentialsFileChecker`, an
  ``ICredentialsChecker`` for ``IUsernamePassword`` that re-reads the file
  when it changes and hashes off the reactor thread;
- :mod:`~chatservice.auth.realm`: :class:`IOperator`, :class:`Operator`,
  :class:`OperatorRealm` and :func:`make_portal`;
- :mod:`~chatservice.auth.throttle`: :class:`LoginThrottle`, which refuses
  logins for a while after repeated failures from one address or for one
  user name, and :func:`address_key`;
- :mod:`~chatservice.auth.authenticator`: :class:`Authenticator`, what the
  front ends call; ``login()`` fires with the :class:`Operator` avatar or
  fails with :class:`LoginFailed`, whose message can be shown to the client
  as is.  (It is not ``twisted.cred.error.LoginFailed``: that one stays
  inside the portal.)
"""

from chatservice.auth.authenticator import LOGIN_FAILED, Authenticator, LoginFailed
from chatservice.auth.checker import CredentialsFileChecker, Runner
from chatservice.auth.credentials import (
    FILE_HEADER,
    FILE_MODE,
    MAX_NAME_LENGTH,
    CredentialsFileError,
    InvalidNameError,
    check_name,
    read_credentials,
    update_credentials,
    valid_name,
    write_credentials,
)
from chatservice.auth.hashing import (
    DEFAULT_LN,
    DEFAULT_P,
    DEFAULT_R,
    HASH_BYTES,
    MAX_SCRYPT_MEMORY,
    SALT_BYTES,
    MalformedHashError,
    ScryptHash,
    hash_password,
    parse_hash,
    verify_password,
)
from chatservice.auth.realm import IOperator, Operator, OperatorRealm, make_portal
from chatservice.auth.throttle import LoginThrottle, address_key

__all__ = [
    "DEFAULT_LN",
    "DEFAULT_P",
    "DEFAULT_R",
    "FILE_HEADER",
    "FILE_MODE",
    "HASH_BYTES",
    "LOGIN_FAILED",
    "MAX_NAME_LENGTH",
    "MAX_SCRYPT_MEMORY",
    "SALT_BYTES",
    "Authenticator",
    "CredentialsFileChecker",
    "CredentialsFileError",
    "IOperator",
    "InvalidNameError",
    "LoginFailed",
    "LoginThrottle",
    "MalformedHashError",
    "Operator",
    "OperatorRealm",
    "Runner",
    "ScryptHash",
    "address_key",
    "check_name",
    "hash_password",
    "make_portal",
    "parse_hash",
    "read_credentials",
    "update_credentials",
    "valid_name",
    "verify_password",
    "write_credentials",
]
