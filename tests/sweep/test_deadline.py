"""budget.timeout holds the whole run: the search takes a trial only while the time left holds
it and the finalists' stage, both as the search's own epochs measured them. No TensorFlow."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import optuna

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import load_sweep
from tlsweep.finalists import EpochCosts, stage_seconds
from tlsweep.sweep import Deadline
from tlsweep.sweep._deadline import StageFit, staged

HEAD_S, FINETUNE_S, TRIAL_S = 1.0, 10.0, 45.0


def plan(tmp_path: Path, finalists: str, timeout: str = "10m") -> SimpleNamespace:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None))
    path = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(
        tmp_path, space, budget=f"{{trials: 50, timeout: {timeout}}}",
        training="{head_epochs: 2, finetune_epochs: 4, batch_size: 16}", finalists=finalists))
    return SimpleNamespace(sweep=load_sweep(path), backbones={"tiny": None},
                           dataset=SimpleNamespace(y_train=[0] * 400, y_val=[0] * 100))


def finished(study: optuna.Study, count: int, probe_s: float = 0.0) -> None:
    """``count`` trials; the first fitted the probe its head started from in ``probe_s``."""
    curve = [{"phase": "head", "duration_s": HEAD_S}] * 2 + \
            [{"phase": "finetune", "duration_s": FINETUNE_S}] * 4
    for number in range(count):
        timings = {"probe_s": probe_s if number == 0 else 0.0}
        study.add_trial(optuna.trial.create_trial(
            value=0.5, user_attrs={"curve": curve, "duration_s": TRIAL_S,
                                   "result": {"value": 0.5, "timings": timings}}))


def test_the_stage_is_costed_from_the_searchs_own_epochs(tmp_path: Path) -> None:
    config = plan(tmp_path, "{k: 2, reevaluate: on, folds: 5}").sweep.config
    costs = EpochCosts.measured([[{"phase": "head", "duration_s": 1.0},
                                  {"phase": "finetune", "duration_s": 10.0},
                                  {"phase": "finetune", "duration_s": 12.0}]], images=400)
    assert costs == EpochCosts(1.0, 11.0, 400)
    # Each of 2 finalists on 5 folds of 400 of the 500 train+val images, then a refit on 500.
    recipe = 2 * 1.0 + 4 * 11.0
    expected = 30 + 5 * 2 * (5 + recipe * 400 / 400) + (5 + recipe * 500 / 400)
    assert stage_seconds(config, costs, 500, searched=2, cores=1) == expected
    # Only as many searched finalists as have finished; none cross-validated: start-up alone.
    assert stage_seconds(config, costs, 500, searched=1, cores=1) < expected
    off = plan(tmp_path, "{k: 2, reevaluate: off}").sweep.config
    assert stage_seconds(off, costs, 500, searched=2, cores=1) == 30
    # Delivering the fold models' ensemble: no refit to pay for.
    assert stage_seconds(staged(config, 5, "ensemble"), costs, 500, searched=2, cores=1) == \
        30 + 5 * 2 * (5 + recipe * 400 / 400)


def test_the_stages_probes_are_costed_from_the_trials_own_probe(tmp_path: Path) -> None:
    """A trial's probe fits 7 C values on 3 folds and refits: 22 fits, here 1 s each. The
    stage searches both weightings on train (43 fits of train's 400 images) and, on its 5
    folds of train+val's 500, both weightings (71 fits) and the out-of-fold predictions (5):
    43 + 76 * 500 / 400 = 138 s. Without cross-validation, the baseline alone."""
    config = plan(tmp_path, "{k: 2, reevaluate: on, folds: 5}").sweep.config
    costs = EpochCosts.measured([[{"phase": "head", "duration_s": 1.0},
                                  {"phase": "finetune", "duration_s": 10.0}]], images=400,
                                probes=[0.0, 22.0])
    assert costs is not None and costs.probe_s == 22.0
    without = EpochCosts(costs.head_s, costs.finetune_s, 400)
    assert stage_seconds(config, costs, 500, 2, 1) - stage_seconds(config, without, 500, 2, 1) \
        == 138
    off = plan(tmp_path, "{k: 2, reevaluate: off}").sweep.config
    assert stage_seconds(off, costs, 500, searched=2, cores=1) == 30 + 43


def test_the_search_stops_while_the_time_left_holds_a_trial_and_the_stage(tmp_path: Path) -> None:
    sweep = plan(tmp_path, "{k: 2, reevaluate: on, folds: 5}", timeout="20m")
    study = optuna.create_study(direction="maximize")
    deadline = Deadline(sweep, time.monotonic(), stage_follows=True)
    assert deadline.allows_a_trial(study)  # nothing measured yet: time is left
    # Past the timeout before any trial finished: one trial all the same, or nothing to deliver.
    assert Deadline(sweep, time.monotonic() - 1e6, stage_follows=True).allows_a_trial(study)
    finished(study, 3)
    assert deadline.allows_a_trial(study)  # 20 minutes hold a 45 s trial and the stage
    stage = deadline.stage_estimate_s
    assert stage is not None and 60 < stage < 1200 - TRIAL_S
    # The run began long enough ago that what is left no longer holds both.
    late = Deadline(sweep, time.monotonic() - (1200 - stage - TRIAL_S + 5), stage_follows=True)
    assert not late.allows_a_trial(study)
    assert late.stopped and "the finalists' stage about" in late.stopped
    # A worker whose stage runs elsewhere (tlsweep worker) searches to the end of its timeout.
    worker = Deadline(sweep, time.monotonic() - (1200 - stage - TRIAL_S + 5),
                      stage_follows=False)
    assert worker.allows_a_trial(study)


def test_without_a_timeout_the_trial_budget_alone_decides(tmp_path: Path) -> None:
    sweep = plan(tmp_path, "{k: 2}", timeout="null")
    study = optuna.create_study(direction="maximize")
    finished(study, 3)
    assert Deadline(sweep, time.monotonic() - 1e6, stage_follows=True).allows_a_trial(study)


def test_the_stage_cuts_its_folds_to_the_time_left(tmp_path: Path) -> None:
    """Five folds when they fit; fewer when only fewer do, as estimated from the same epochs
    and the trials' probe; never below three. When three with a refit do not fit either, the
    most folds that fit when the fold models' ensemble is delivered instead; when nothing fits,
    the cheapest."""
    sweep = plan(tmp_path, "{k: 2, reevaluate: on, folds: 5}", timeout="20m")
    study = optuna.create_study(direction="maximize")
    finished(study, 3, probe_s=22.0)
    config = sweep.sweep.config
    deadline = Deadline(sweep, time.monotonic(), stage_follows=True)
    trials = study.get_trials()

    def estimate(folds: int, deliver: str | None = None) -> float:
        return deadline.estimate(staged(config, folds, deliver), trials)

    def with_left(seconds: float) -> StageFit:
        return Deadline(sweep, time.monotonic() - (1200 - seconds),
                        stage_follows=True).stage_that_fits(study)

    assert estimate(5) > estimate(4) > estimate(3) > estimate(3, "ensemble")
    assert deadline.stage_that_fits(study) == StageFit(5)  # 20 minutes hold the whole stage
    assert with_left((estimate(4) + estimate(5)) / 2) == StageFit(4)
    short = (estimate(3) + estimate(3, "ensemble")) / 2
    most = max(f for f in (3, 4, 5) if estimate(f, "ensemble") <= short)
    assert with_left(short) == StageFit(most, "ensemble")
    hopeless = Deadline(sweep, time.monotonic() - 1190, stage_follows=True)
    assert hopeless.stage_that_fits(study) == StageFit(3, "ensemble")  # nothing fits: the least
    assert hopeless.stage_estimate_s == estimate(3, "ensemble")
    # Nothing to cut: nothing measured yet, or no cross-validation.
    empty = optuna.create_study(direction="maximize")
    assert hopeless.stage_that_fits(empty) == StageFit(5)
    off = plan(tmp_path, "{k: 2, reevaluate: off}", timeout="20m")
    assert Deadline(off, time.monotonic() - 1190, stage_follows=True
                    ).stage_that_fits(study) == StageFit(5)
    unlimited = plan(tmp_path, "{k: 2, reevaluate: on, folds: 5}", timeout="null")
    assert Deadline(unlimited, time.monotonic() - 1e6, stage_follows=True
                    ).stage_that_fits(study) == StageFit(5)
