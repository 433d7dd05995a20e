"""
Password hashes: scrypt, with a random salt, encoded as::

    scrypt$ln=14,r=8,p=1$<salt>$<hash>

where ``ln`` is log2 of scrypt's cost ``N``, ``r`` the block size and ``p``
the parallelism; salt (16 random bytes) and hash (32 bytes) are in standard
base64 without ``=`` padding (as in the PHC string format).  Each hash keeps
its own parameters, so the defaults can be raised later and old entries keep
working until their password is next set.  Passwords are NFC-normalized and
UTF-8 encoded before hashing.

:func:`hash_password` makes a hash, :func:`verify_password` checks a
password against one (never raises; ``False`` for a malformed hash) and
:func:`parse_hash` reads one (raises :class:`MalformedHashError`).
:func:`dummy_hash` gives a hash no password matches, for unknown users.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

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


def dummy_hash(like: ScryptHash | None) -> str:
    """
    An encoded hash that no password matches, costing as much to verify as
    ``like`` (or a default hash): what unknown users are checked against.
    """
    ln, r, p = (like.ln, like.r, like.p) if like else (DEFAULT_LN, DEFAULT_R, DEFAULT_P)
    size = len(like.hash) if like else HASH_BYTES
    salt = secrets.token_bytes(SALT_BYTES)
    return _encode(ScryptHash(ln, r, p, salt, secrets.token_bytes(size)))
