"""
IRC daemons from the distribution as anchors of the IRC workloads of
``bench/run.py`` (``irc-fanout``, ``memory-irc``): InspIRCd and ngIRCd
(Debian: ``apt-get install inspircd ngircd``).

Each runs in the foreground with a configuration generated from
``bench/anchors/NAME.conf`` (``{port}`` and ``{directory}`` filled in) in
the run's scratch directory, on a free loopback port, with the limits that
would stop a load test lifted (see the comments in those files).  A daemon
that is not installed is no error: ``run.py`` says so and runs without it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

ANCHOR_CONFIGS = Path(__file__).resolve().parent / "anchors"
#: Where Debian installs daemons, often not on a user's PATH.
DAEMON_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin", "/sbin")

INSPIRCD = "inspircd"
NGIRCD = "ngircd"


@dataclass(frozen=True)
class Daemon:
    """One IRC daemon: its program, and how it runs in the foreground."""

    name: str
    program: str
    #: Arguments after the program; ``{config}`` is the generated file.
    arguments: tuple[str, ...]
    package: str

    def installed(self) -> str | None:
        """The daemon's program, or None when it is not installed."""
        path = os.pathsep.join(
            [os.environ.get("PATH", os.defpath), *DAEMON_DIRECTORIES]
        )
        return shutil.which(self.program, path=path)

    def command(self, port: int, directory: Path) -> list[str]:
        """
        Write this daemon's configuration for ``port`` into ``directory``;
        the command that runs it there in the foreground.
        """
        program = self.installed()
        if program is None:
            raise FileNotFoundError(f"{self.name} is not installed")
        template = (ANCHOR_CONFIGS / f"{self.name}.conf").read_text()
        config = directory / f"{self.name}-{port}.conf"
        config.write_text(template.format(port=port, directory=directory))
        # InspIRCd refuses to start without its MOTD file.
        (directory / f"{self.name}-{port}.motd").write_text("bench\n")
        return [program, *(a.format(config=config) for a in self.arguments)]


DAEMONS = {
    INSPIRCD: Daemon(
        INSPIRCD,
        "inspircd",
        ("--config", "{config}", "--nofork", "--runasroot", "--nopid"),
        "inspircd",
    ),
    NGIRCD: Daemon(NGIRCD, "ngircd", ("--nodaemon", "--config", "{config}"), "ngircd"),
}
