"""Everything the inspection commands know about a study, from its Parquet files and storage.

No TensorFlow here: ``show``, ``importance``, ``diagnose`` and ``report`` start from this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlsweep.errors import ConfigError
from tlsweep.store import CURVES, LEADERBOARD, REFERENCES, read_parquet


def load_leaderboard(directory: Path, study: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The trials' rows, then the reference rows (chosen, baseline) when there are any."""
    path = directory / LEADERBOARD
    if not path.is_file():
        raise ConfigError(f"{path}: no leaderboard for study {study!r}. Run a sweep first "
                          f"(`tlsweep run SWEEP.yaml`), or check --results-dir.")
    board, meta = read_parquet(path)
    if (directory / REFERENCES).is_file():
        references = read_parquet(directory / REFERENCES)[0]
        if not references.empty:
            board = pd.concat([board, references], ignore_index=True)
    return board, meta


@dataclass
class ClassMetrics:
    names: list[str]
    confusion: np.ndarray  # rows: true class, columns: predicted

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def recall(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(self.support, 1)

    @property
    def precision(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=0), 1)

    def worst(self) -> tuple[str, float]:
        index = int(np.argmin(self.recall))
        return self.names[index], float(self.recall[index])


@dataclass
class StudyView:
    name: str
    directory: Path
    leaderboard: pd.DataFrame  # the trials' rows
    curves: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    references: pd.DataFrame = field(default_factory=pd.DataFrame)  # chosen and baseline rows

    @classmethod
    def load(cls, directory: Path, name: str) -> StudyView:
        board, meta = load_leaderboard(directory, name)
        curves = read_parquet(directory / CURVES)[0] if (directory / CURVES).is_file() \
            else pd.DataFrame()
        trials = board["role"] == "trial" if "role" in board else pd.Series(True, board.index)
        return cls(name, directory, board[trials], curves, meta, board[~trials])

    def reference(self, role: str) -> pd.DataFrame:
        """The ``chosen`` or ``baseline`` rows (empty for a study written before them)."""
        refs = self.references
        return refs[refs["role"] == role] if "role" in refs else refs

    # ----------------------------------------------------------------------- storage
    @cached_property
    def study(self) -> Any:
        from tlsweep.store import load_study

        return load_study(self.directory, self.name)

    @property
    def attrs(self) -> dict[str, Any]:
        return self.study.user_attrs

    def trial(self, number: int) -> Any:
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        if number not in trials:
            raise ConfigError(f"trial {number} is not in study {self.name!r}; it has trials "
                              f"{min(trials, default=0)}..{max(trials, default=-1)}.")
        return trials[number]

    # ----------------------------------------------------------------------- derived
    @property
    def objective(self) -> str:
        return str(self.meta.get("objective") or "val_accuracy")

    @property
    def complete(self) -> pd.DataFrame:
        return self.leaderboard[self.leaderboard["state"] == "complete"]

    def best_trial_number(self) -> int | None:
        complete = self.complete
        return None if complete.empty else int(complete.sort_values("value").iloc[-1]["trial"])

    def class_metrics(self, number: int) -> ClassMetrics | None:
        result = self.trial(number).user_attrs.get("result") or {}
        confusion = result.get("confusion")
        if confusion is None:
            return None
        names = self.attrs.get("class_names") or [str(i) for i in range(len(confusion))]
        return ClassMetrics(list(names), np.asarray(confusion))

    def curve(self, number: int) -> pd.DataFrame:
        if self.curves.empty:
            return self.curves
        return self.curves[self.curves["trial"] == number].sort_values("step")

    def comparable(self) -> tuple[pd.DataFrame, int | None]:
        """Complete and pruned trials, each with ``value`` its best epoch up to the step that four
        in five of them reached (``_importance.common_step``), and that step. A trial that stopped
        earlier is left out: its parameters were never measured there."""
        from tlsweep.inspection._importance import common_step

        board = self.leaderboard
        finished = board[board["state"].isin(["complete", "pruned"])]
        if self.curves.empty or finished.empty:
            return finished.iloc[:0], None
        curves = self.curves[self.curves["trial"].isin(finished["trial"])]
        last = curves.groupby("trial")["step"].max()
        step = common_step(last.tolist())
        if step is None:
            return finished.iloc[:0], None
        reached = last[last >= step].index
        values = curves[curves["trial"].isin(reached) & (curves["step"] <= step)]\
            .groupby("trial")[self.objective].max()
        counted = finished[finished["trial"].isin(reached)].drop(columns="value")
        return counted.join(values.rename("value"), on="trial"), step

    def head_epochs(self) -> int | None:
        """Where phase 2 starts: the first fine-tune step in any curve."""
        if self.curves.empty or "finetune" not in set(self.curves["phase"]):
            return None
        return int(self.curves.loc[self.curves["phase"] == "finetune", "step"].min())
