"""The finalists' folds over fold workers: how many, and that spreading them over processes
changes no fold's model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tlsweep.finalists._folds import fold_workers


@pytest.mark.parametrize(("setting", "cores", "jobs", "gpu", "expected"), [
    ("auto", 2, 20, False, (2, 1)),   # one per core, one thread each
    ("auto", 8, 20, False, (8, 1)),
    ("auto", 8, 3, False, (3, 2)),    # never more workers than folds; the cores shared out
    ("auto", 2, 20, True, (1, 0)),    # a GPU: the stage's own process, default threads
    ("auto", 1, 20, False, (1, 0)),
    (1, 8, 20, False, (1, 0)),
    (4, 2, 20, False, (4, 1)),        # asked for: given, at one thread at least
])
def test_fold_workers_follow_the_cores_the_folds_and_the_device(
        setting: int | str, cores: int, jobs: int, gpu: bool,
        expected: tuple[int, int]) -> None:
    assert fold_workers(setting, cores, jobs, gpu) == expected


def fold_jobs(plan: object, out_dir: Path) -> list:
    from sklearn.model_selection import StratifiedKFold

    from tlsweep.config import TrialParams
    from tlsweep.finalists._protocol import Finalist, FoldJob
    from tlsweep.training import TrialSettings

    data = plan.dataset  # type: ignore[attr-defined]
    labels = np.concatenate([data.y_train, data.y_val])
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(labels, labels))
    settings = TrialSettings(16, 2, 2, 16, 0.3, "val_accuracy", seed=3)
    finalists = [Finalist(1, TrialParams("Tiny", 0.5, 2e-2, 3e-3, 0.0, "none"), 0.5, 4,
                          settings, None),
                 Finalist(2, TrialParams("Tiny", 1.0, 1e-2, 1e-3, 0.3, "sqrt"), 0.5, 3,
                          replace(settings, seed=4), None)]
    return [FoldJob(f, i, train, held, out_dir / f"trial-{f.number}-fold-{i + 1}.keras", "key")
            for f in finalists for i, (train, held) in enumerate(folds)]


@pytest.mark.slow
def test_two_fold_workers_train_the_models_one_gives(tmp_path: Path,
                                                     tiny_backbone: Path) -> None:
    from tests.training.test_trial import tiny_plan
    from tlsweep.finalists._folds import FoldWorkers
    from tlsweep.sweep._runner import worker_spec

    plan = tiny_plan(tmp_path, tiny_backbone)
    spec = worker_spec(plan)
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}"
        out.mkdir()
        jobs, started = fold_jobs(plan, out), []
        with FoldWorkers(spec, workers, threads=1) as pool:
            results[workers] = {(d.trial, d.index): d.predicted
                                for d in pool.run(jobs, started.append, lambda job: True)}
        assert list(map(id, started)) == list(map(id, jobs)), "each handed out once, in order"
        assert all(job.path.is_file() for job in jobs), "every fold's model saved"
    # One thread in every process and every fold from its finalist's seed: the same models,
    # whichever worker trained them and after whatever it trained before.
    assert results[2] == results[1]
    assert len(results[1]) == 6


@pytest.mark.slow
def test_a_fold_that_fails_names_its_trial_and_fold(tmp_path: Path,
                                                    tiny_backbone: Path) -> None:
    from tests.training.test_trial import tiny_plan
    from tlsweep.finalists._folds import FoldWorkers
    from tlsweep.sweep._runner import worker_spec

    plan = tiny_plan(tmp_path, tiny_backbone)
    job = fold_jobs(plan, tmp_path)[0]
    broken = replace(job, finalist=replace(job.finalist, params=replace(
        job.finalist.params, backbone="Missing")))
    with FoldWorkers(worker_spec(plan), 1, threads=1) as pool, \
            pytest.raises(RuntimeError, match="trial 1's fold 1: KeyError: 'Missing'"):
        list(pool.run([broken], lambda job: None, lambda job: True))
