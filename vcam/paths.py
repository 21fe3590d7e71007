"""Where SharpCam keeps what it may rebuild: the user's cache folder, never the current one."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/sharpcam, else ~/.cache/sharpcam (created by whoever writes to it)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sharpcam"
