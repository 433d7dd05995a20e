"""
Sphinx configuration of the chatservice manual.

Build it with ``sphinx-build -W -b html docs BUILD_DIR`` (``.ci/run`` does,
warnings being errors); install Sphinx with ``pip install '.[docs]'``.
"""

from __future__ import annotations

import re
from pathlib import Path

project = "chatservice"
author = "the chatservice developers"
copyright = "the chatservice developers"

# The version without importing the package (the docs build needs only Sphinx).
_init = Path(__file__).parent.parent / "chatservice" / "__init__.py"
_found = re.search(r'__version__\s*=\s*"([^"]+)"', _init.read_text(encoding="utf-8"))
release = version = _found.group(1) if _found else "unknown"

root_doc = "index"
exclude_patterns = ["_build"]
# The default theme: the manual needs no dependency for its looks.
html_theme = "alabaster"
html_title = f"chatservice {release} manual"
# Code blocks are shell sessions and protocol transcripts, not Python.
highlight_language = "none"
