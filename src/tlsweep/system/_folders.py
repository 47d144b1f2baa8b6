"""Folders a command will write in, checked before it writes anything."""

from __future__ import annotations

import os
from pathlib import Path

from tlsweep.errors import ConfigError


def writable_folder(path: Path, what: str) -> None:
    """``path`` is a folder this process can write in, or one it can create: checked before
    anything is written, so a bad path leaves nothing half-made."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{what}: {existing} is a file, not a folder"
                          + (f" (so {path} cannot be made)" if existing != path else "")
                          + ". Point it at a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {existing} is not writable by this user. Point it at a "
                          f"folder you can write in.")
