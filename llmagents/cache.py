"""Where llmagents keeps what it builds or remembers on this machine, outside any project.

One directory for the command-line tools: ``$LLMAGENTS_CACHE_DIR``, else
``$XDG_CACHE_HOME/llmagents``, else ``~/.cache/llmagents``. ``llmagents onnx-convert`` keeps
its downloaded wheels and converted models there, ``llmagents run`` each agent's checkpoint,
spend journal and results (``run/<namespace>/<agent>``).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache directory (see the module docstring); not created here."""
    if explicit := os.environ.get("LLMAGENTS_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmagents"
