"""
Run the chatservice of another tree under twistd, for ``bench/run.py
--compare``::

    python bench/launch_tree.py TREE [twistd arguments]
    python bench/launch_tree.py /tmp/old -n --pidfile= chatservice --chat tcp:6666

TREE is a directory holding a ``chatservice`` package: another checkout, or
a revision extracted with ``git archive``.  It takes the place of this
script's directory at the head of ``sys.path``, so ``import chatservice``
finds that tree and not the installed package; the first line printed names
the file imported, and the launcher refuses to go on if it is not in TREE.

Then twistd runs as the ``twistd`` script would (the same option parsing,
logging, reactor and signal handling, in the same interpreter), with one
difference: its only service plugin is a ``ServiceMaker`` for
``chatservice.tap``, which now means TREE's.  twistd's plugin discovery is
not used: it would find the ``twisted/plugins/chatservice_plugin.py`` of
every tree on ``sys.path``, the installed one included, all named
chatservice.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

#: The start of the line that names the ``chatservice/__init__.py`` imported.
MARKER = "launch_tree: chatservice from "


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    tree = Path(argv[0]).resolve()
    sys.path[0] = str(tree)
    import chatservice

    module = Path(chatservice.__file__ or "").resolve()
    if not module.is_relative_to(tree):
        print(
            f"launch_tree: chatservice comes from {module}, not from {tree}",
            file=sys.stderr,
        )
        return 1
    print(MARKER + str(module), flush=True)

    from twisted.application.service import ServiceMaker
    from twisted.scripts import twistd

    maker = ServiceMaker(
        "chatservice",
        "chatservice.tap",
        f"chatservice from {tree}",
        "chatservice",
    )
    twistd.ServerOptions._getPlugins = staticmethod(lambda interface: [maker])
    sys.argv = ["twistd", *argv[1:]]
    twistd.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
