"""The contract every search engine keeps: given a prepared study, search until the budget is
spent (or Ctrl-C), recording every trial in the Optuna study so that the leaderboard, resume,
importance and the finalists' stage work the same whichever engine searched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from tlsweep.sweep import Deadline, Listener, Plan


@dataclass(frozen=True)
class Search:
    """What an engine is handed by ``tlsweep run`` / ``resume``."""

    plan: Plan
    study: Any  # optuna.Study: the record every engine writes to
    listener: Listener  # the live view: trial starts, epochs, ends
    url: str  # the study's storage URL (workers of the Optuna engine open it themselves)
    publish: Callable[[Any], None]  # rewrites the Parquet files from the study
    deadline: Deadline  # when the search must stop for the whole run to keep budget.timeout

    @property
    def resuming(self) -> bool:
        return bool(self.study.trials)


class Engine(Protocol):
    name: ClassVar[str]  # as written in the sweep file's ``engine:``
    # Whether several processes (``--workers N``, ``tlsweep worker``) may search one study.
    shares_a_study: ClassVar[bool]

    def search(self, search: Search) -> int:
        """Search until the budget is spent: 0, or 130 after a clean interrupt."""
        ...
