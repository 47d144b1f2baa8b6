"""The default engine: Optuna's sampler and pruner, each trial in a worker subprocess
(``tlsweep.sweep.SweepRunner``), any number of orchestrators sharing one study."""

from __future__ import annotations

from typing import ClassVar

from tlsweep.engines._base import Search
from tlsweep.sweep import SweepRunner


class OptunaEngine:
    name: ClassVar[str] = "optuna"
    shares_a_study: ClassVar[bool] = True

    def search(self, search: Search) -> int:
        return SweepRunner(search.plan, search.study, search.listener, search.url,
                           search.publish, search.deadline).run()
