"""
Packaging: the wheel built from this source tree, and what installing and
uninstalling it does to a fresh virtualenv.

SLOW AND NEEDS THE NETWORK.  The wheel is built once per test run (``python
-m build --wheel``, which fetches setuptools into an isolated environment),
and one virtualenv is created per test run, into which pip installs the
wheel and fetches Twisted from PyPI.  Without access to PyPI these tests
FAIL rather than skip: CI must not hide a broken install.  Expect tens of
seconds on a warm cache, a few minutes on a cold one.

The build works on a copy of the source tree, so the tree itself is never
written to (no ``build/``, no ``*.egg-info``); the wheel, the copy and the
virtualenv live in a temporary directory removed when the test run ends.
"""

from __future__ import annotations

import atexit
import configparser
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from twisted.trial.unittest import SynchronousTestCase

from tests.support import SOURCE_ROOT, describe_run, run

#: Seconds for building the wheel, creating the virtualenv, installing.
BUILD_TIMEOUT = 600.0
VENV_TIMEOUT = 300.0
INSTALL_TIMEOUT = 900.0

#: What the build does not need from the source tree.
NOT_COPIED = shutil.ignore_patterns(
    ".*",  # .git, .venv-ci, tool caches
    "_trial_temp*",
    "__pycache__",
    "*.py[cod]",
    "*.egg-info",
    "build",
    "dist",
    "venv",
    "dropin.cache",
)

#: The plugin, and the files that must never be in the wheel: they would
#: shadow Twisted's own packages (and be deleted with chatservice).
PLUGIN = "twisted/plugins/chatservice_plugin.py"
FORBIDDEN = ("twisted/__init__.py", "twisted/plugins/__init__.py")

T = TypeVar("T")

_scratch: Path | None = None


def scratch() -> Path:
    """A temporary directory for this test run, removed when it ends."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="chatservice-packaging-"))
        atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
    return _scratch


def clean_environment() -> dict[str, str]:
    """Our environment, without what would leak this checkout into the child."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }


class Once(Generic[T]):
    """
    A value made on first use and shared by every test of the run; a failure
    to make it is remembered too, so it costs its time only once.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._error: str | None = None

    def get(self) -> T:
        if self._error is not None:
            raise AssertionError(self._error)
        if self._value is None:
            try:
                self._value = self._make()
            except AssertionError as error:
                self._error = str(error)
                raise
        return self._value


def _build() -> tuple[Path, Path]:
    """Build the wheel from a copy of the source tree: (wheel, the copy)."""
    source = scratch() / "source"
    shutil.copytree(SOURCE_ROOT, source, ignore=NOT_COPIED)
    out = scratch() / "dist"
    result = run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", out, source],
        cwd=scratch(),
        env=clean_environment(),
        timeout=BUILD_TIMEOUT,
    )
    assert result.returncode == 0, f"building the wheel failed:\n{describe_run(result)}"
    wheels = list(out.glob("chatservice-*.whl"))
    assert len(wheels) == 1, f"expected one wheel, got {wheels}"
    return wheels[0], source


def _install() -> Path:
    """A fresh virtualenv with the wheel installed; its ``bin`` directory."""
    wheel, _ = built.get()
    venv = scratch() / "venv"
    result = run(
        [sys.executable, "-m", "venv", venv],
        env=clean_environment(),
        timeout=VENV_TIMEOUT,
    )
    assert result.returncode == 0, f"creating a venv failed:\n{describe_run(result)}"
    bin_directory = venv / "bin"
    result = run(
        [bin_directory / "python", "-m", "pip", "install", wheel],
        cwd=scratch(),
        env=clean_environment(),
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, (
        "installing the wheel (and Twisted, from PyPI) into a fresh venv "
        f"failed -- is PyPI reachable?\n{describe_run(result)}"
    )
    return bin_directory


built: Once[tuple[Path, Path]] = Once(_build)
installed: Once[Path] = Once(_install)


class WheelTests(SynchronousTestCase):
    """What the wheel holds."""

    def setUp(self) -> None:
        self.wheel, self.source = built.get()
        with zipfile.ZipFile(self.wheel) as archive:
            self.names = set(archive.namelist())
            (self.entry_points,) = (
                archive.read(name).decode()
                for name in self.names
                if name.endswith(".dist-info/entry_points.txt")
            )

    def test_pluginWithoutNamespaceInit(self) -> None:
        """
        The wheel has the twistd plugin module, and nothing else under
        ``twisted/``: no ``twisted/__init__.py`` or
        ``twisted/plugins/__init__.py`` that would replace Twisted's own, no
        plugin cache.
        """
        self.assertIn(PLUGIN, self.names)
        for name in FORBIDDEN:
            self.assertNotIn(name, self.names)
        self.assertEqual(
            {name for name in self.names if name.startswith("twisted/")}, {PLUGIN}
        )

    def test_packageModules(self) -> None:
        """
        Every module of the ``chatservice`` package (and its subpackages) in
        the source tree is in the wheel, and nothing outside ``chatservice``,
        the plugin and the metadata is (no tests, no benchmarks).
        """
        modules = {
            path.relative_to(self.source).as_posix()
            for path in (self.source / "chatservice").rglob("*.py")
        }
        self.assertIn("chatservice/__init__.py", modules)
        self.assertEqual(modules - self.names, set())
        tops = {PurePosixPath(name).parts[0] for name in self.names}
        self.assertEqual(
            {top for top in tops if not top.endswith(".dist-info")},
            {"chatservice", "twisted"},
        )

    def test_webPageFiles(self) -> None:
        """
        The web door's page (``chatservice/doors/web/static``: HTML, CSS,
        JavaScript) is in the wheel, every file of it, as package data.
        """
        static = self.source / "chatservice" / "doors" / "web" / "static"
        files = {path.relative_to(self.source).as_posix() for path in static.iterdir()}
        self.assertIn("chatservice/doors/web/static/index.html", files)
        self.assertIn("chatservice/doors/web/static/chat.js", files)
        self.assertEqual(files - self.names, set())

    def test_consoleScripts(self) -> None:
        """The wheel declares the ``chatservice-client`` and
        ``chatservice-passwd`` console scripts."""
        entry_points = configparser.ConfigParser()
        entry_points.read_string(self.entry_points)
        scripts = dict(entry_points["console_scripts"])
        self.assertEqual(scripts.get("chatservice-client"), "chatservice.client:main")
        self.assertEqual(scripts.get("chatservice-passwd"), "chatservice.passwd:main")


class InstalledTests(SynchronousTestCase):
    """The wheel installed into a fresh virtualenv (one for the whole run)."""

    def setUp(self) -> None:
        self.bin = installed.get()

    def run_in_venv(self, *args: str) -> str:
        """Run one of the venv's scripts; it must succeed; its output."""
        result = run([self.bin / args[0], *args[1:]], cwd=scratch())
        self.assertEqual(result.returncode, 0, describe_run(result))
        return result.stdout.decode()

    def twisted_plugins_directory(self) -> Path:
        """Where the venv's Twisted keeps its plugins."""
        return Path(
            self.run_in_venv(
                "python", "-c", "import twisted.plugins as p; print(p.__path__[0])"
            ).strip()
        )

    def test_twistdFindsPlugin(self) -> None:
        """
        In the venv, ``twistd --help`` lists ``chatservice``, and ``twistd
        chatservice --help`` works: the plugin imports with only the declared
        dependencies installed.
        """
        commands = self.run_in_venv("twistd", "--help").partition("Commands:")[2]
        self.assertRegex(commands, r"(?m)^\s+chatservice\s+\S")
        self.assertIn("--echo=", self.run_in_venv("twistd", "chatservice", "--help"))

    def test_clientScript(self) -> None:
        """The venv's ``chatservice-client --help`` runs and succeeds."""
        self.assertTrue(self.run_in_venv("chatservice-client", "--help").strip())

    def test_uninstallKeepsTwisted(self) -> None:
        """
        Uninstalling chatservice removes its plugin and leaves Twisted's
        plugin package intact: ``twistd --help`` still works and no longer
        lists ``chatservice``.  (The wheel is reinstalled afterwards, so the
        order of these tests does not matter.)
        """
        plugins = self.twisted_plugins_directory()
        self.addCleanup(self.reinstall)
        self.run_in_venv("python", "-m", "pip", "uninstall", "--yes", "chatservice")
        self.assertFalse((plugins / "chatservice_plugin.py").exists())
        self.assertTrue((plugins / "__init__.py").exists())
        self.assertTrue((plugins.parent / "__init__.py").exists())
        commands = self.run_in_venv("twistd", "--help").partition("Commands:")[2]
        self.assertIn("web ", commands)
        self.assertNotIn("chatservice", commands)

    def reinstall(self) -> None:
        wheel, _ = built.get()
        self.run_in_venv(
            "python", "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)
        )


def install_requires() -> list[str]:
    """The requirements of ``setup.cfg``'s ``install_requires``."""
    config = configparser.ConfigParser()
    config.read(SOURCE_ROOT / "setup.cfg", encoding="utf-8")
    lines = config["options"]["install_requires"].splitlines()
    stripped = (line.strip() for line in lines)
    return [line for line in stripped if line and not line.startswith("#")]


class DependencyBoundsTests(SynchronousTestCase):
    """setup.cfg bounds what it depends on, and this install is within."""

    def test_twistedBoundedAndInstalledWithin(self) -> None:
        """
        Twisted is required with an upper bound (the write-through relies on
        its transports' behaviour, tested up to that major version), and the
        Twisted the tests run on is within the bounds: CI, which installs
        from setup.cfg, checks both.
        """
        from packaging.requirements import Requirement

        import twisted

        requirements = {
            requirement.name.lower(): requirement
            for requirement in map(Requirement, install_requires())
        }
        twisted_requirement = requirements["twisted"]
        self.assertTrue(
            any(spec.operator == "<" for spec in twisted_requirement.specifier),
            str(twisted_requirement),
        )
        self.assertIn(twisted.__version__, twisted_requirement.specifier)
        self.assertIn("precis-i18n", requirements)
