"""
``--config FILE``: the options of ``twistd chatservice`` in a TOML file.

Every key is the name of a long option, as on the command line without its
dashes, and nothing else: the keys are read off the ``usage.Options`` class
itself (:func:`option_specs`), so an option added there is a key here with
no other change.

- a flag (``optFlags``) is a boolean: ``history-private = true``;
- a parameter (``optParameters``) is a string, or a number where its
  option takes one, checked by the option's own coercion:
  ``idle-timeout = 600``, ``max-clients = "auto"``;
- a repeatable option (an ``opt_NAME`` method taking a value: each door's
  endpoints) is a list of strings, or one string:
  ``chat = ["tcp:6666:interface=127.0.0.1", "unix:chat.sock"]``.

The command line overrides the file option by option (an endpoint option
given on the command line replaces the file's whole list).  A key that is
not an option, or a value of the wrong type, is a :class:`ConfigError`
naming the key and its line in the file.
"""

from __future__ import annotations

import difflib
import getopt
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from twisted.python import reflect, usage

#: The option that names the file (not a key of the file itself).
CONFIG_OPTION = "config"

#: Options that only print and exit: not in a file.
_NOT_IN_FILE = frozenset({CONFIG_OPTION, "help", "version"})

Kind = Literal["flag", "parameter", "list"]


class ConfigError(usage.UsageError):
    """A configuration file that cannot be used; the message says where."""


@dataclass(frozen=True)
class OptionSpec:
    """What one option of a ``usage.Options`` class takes, as a file key."""

    #: Its long name: the key.
    name: str
    kind: Kind
    #: The parameter's coercion (``None``: a string as given).
    coerce: Callable[[str], Any] | None = None


def option_specs(options_class: type[usage.Options]) -> dict[str, OptionSpec]:
    """
    Every option of ``options_class`` that a file may set, by name, read
    from its definitions (``optFlags``, ``optParameters`` and its
    ``opt_NAME`` methods that take a value).
    """
    specs: dict[str, OptionSpec] = {}
    flags: list[Sequence[Any]] = []
    reflect.accumulateClassList(options_class, "optFlags", flags)
    for flag in flags:
        specs[flag[0]] = OptionSpec(flag[0], "flag")
    parameters: list[Sequence[Any]] = []
    reflect.accumulateClassList(options_class, "optParameters", parameters)
    for parameter in parameters:
        coerce = parameter[4] if len(parameter) > 4 else None
        specs[parameter[0]] = OptionSpec(parameter[0], "parameter", coerce)
    for long_option in options_class().longOpt:
        # getopt's form: "name=" takes a value.
        name = long_option.rstrip("=")
        if long_option.endswith("=") and name not in specs:
            specs[name] = OptionSpec(name, "list")
    for name in _NOT_IN_FILE:
        specs.pop(name, None)
    return specs


def line_of(text: str, key: str) -> int | None:
    """
    The line (from 1) where a top-level ``key`` of a TOML text is set, bare
    or quoted, as a key, a dotted key or a table; ``None`` if not found.
    (``tomllib`` keeps no positions.)
    """
    name = re.escape(key)
    quoted = rf"(?:{name}|\"{name}\"|'{name}')"
    pattern = re.compile(rf"^\s*(?:{quoted}\s*[=.]|\[\[?\s*{quoted}\s*[\].])")
    table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if pattern.match(line) and (not table or stripped.startswith("[")):
            return number
        if stripped.startswith("["):
            table = True  # keys below a table header are not top-level
    return None


def _number_text(value: int | float) -> str:
    """A TOML number as the option's coercion reads it from a command line."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(value)


def _toml_type(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _arguments(spec: OptionSpec, value: object) -> list[str]:
    """
    The command-line words that set ``spec`` to a file's ``value``; raise
    ``ValueError`` saying what is wrong with it.
    """
    option = f"--{spec.name}"
    if spec.kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, not {_toml_type(value)}")
        return [option] if value else []
    if spec.kind == "list":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(
                f"expected a string or an array of strings, not {_toml_type(value)}"
            )
        if not values:
            raise ValueError('an empty array: give "none" to turn it off')
        return [f"{option}={each}" for each in values]
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if spec.coerce is None:
            raise ValueError(f"expected a string, not {_toml_type(value)}")
        text = _number_text(value)
    else:
        kinds = "a string or a number" if spec.coerce is not None else "a string"
        raise ValueError(f"expected {kinds}, not {_toml_type(value)}")
    if spec.coerce is not None:
        spec.coerce(text)  # the option's own check, with its own message
    return [f"{option}={text}"]


@dataclass(frozen=True)
class ConfigFile:
    """A configuration file read and checked: the options it sets."""

    path: str
    #: Command-line words for each key the file sets, by option name.
    arguments: Mapping[str, Sequence[str]]
    #: The line each key is set on (when found).
    lines: Mapping[str, int]

    def where(self, key: str) -> str:
        """``FILE, line N`` (or ``FILE``) for what the file says of ``key``."""
        line = self.lines.get(key)
        return f"{self.path}, line {line}" if line is not None else self.path


def read_config(path: str, specs: Mapping[str, OptionSpec]) -> ConfigFile:
    """Read and check a configuration file against ``specs``."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ConfigError(f"--config {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
        table = tomllib.loads(text)
    except UnicodeDecodeError as error:
        raise ConfigError(f"--config {path}: not UTF-8 ({error.reason})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"--config {path}: not valid TOML: {error}") from None
    arguments: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    for key, value in table.items():
        line = line_of(text, key)
        if line is not None:
            lines[key] = line
        where = f"{path}, line {line}" if line is not None else path
        spec = specs.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, specs, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: {key!r} is not an option of twistd chatservice{hint}"
            )
        try:
            arguments[key] = _arguments(spec, value)
        except ValueError as error:
            raise ConfigError(f"{where}: {key}: {error}") from None
    return ConfigFile(path, arguments, lines)


def command_line_options(
    options: usage.Options, argv: Sequence[str]
) -> tuple[set[str], str | None]:
    """
    The options a command line gives (long names), and the last
    ``--config`` value, without running any option's handler.  A command
    line getopt refuses gives nothing: parsing it reports the error.
    """
    try:
        given, _ = getopt.getopt(list(argv), options.shortOpt, options.longOpt)
    except getopt.error:
        return set(), None
    names: set[str] = set()
    config: str | None = None
    for option, value in given:
        written = option.lstrip("-")
        synonyms = options.synonyms
        name = synonyms.get(written, synonyms.get(written.replace("-", "_")))
        if not isinstance(name, str):
            continue
        names.add(name)
        if name == CONFIG_OPTION:
            config = value
    return names, config


def file_arguments(config: ConfigFile, overridden: Iterable[str]) -> list[str]:
    """The file's options as command-line words, less those ``overridden``."""
    skip = set(overridden)
    words: list[str] = []
    for key, each in config.arguments.items():
        if key not in skip:
            words.extend(each)
    return words


def located(
    error: usage.UsageError, config: ConfigFile, overridden: Iterable[str]
) -> usage.UsageError:
    """
    A check's error about an option (``--NAME ...``) that came from the
    file (not ``overridden`` by the command line), with where the file sets
    it; any other error as it is.
    """
    found = re.match(r"--([\w-]+)", str(error))
    if found is None:
        return error
    name = found.group(1)
    if name not in config.arguments or name in set(overridden):
        return error
    return ConfigError(f"{error} (set in {config.where(found.group(1))})")
