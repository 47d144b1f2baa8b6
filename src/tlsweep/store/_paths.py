"""Where a study's files live. Import-light: the inspection commands start here."""

from __future__ import annotations

import os
from pathlib import Path

from tlsweep.system import environment

STORAGE_FILE = "study.db"


def results_root() -> Path:
    return Path(os.environ.get(environment.RESULTS, "results"))


def study_dir(study: str, root: Path | None = None) -> Path:
    return (root or results_root()) / study


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{(directory / STORAGE_FILE).resolve()}"
