"""Plain records: frozen dataclasses that become dicts for JSON, Optuna's attributes and Parquet
rows, written once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


class Record:
    """Mixed into a dataclass: ``as_dict`` is its fields, recursively, as plain values."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]
