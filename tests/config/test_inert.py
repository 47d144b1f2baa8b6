"""No silent no-ops: an option whose value means it can never act is an error that names the
key and the fix (issue 38). No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import load_sweep
from tlsweep.errors import ConfigError

# tiny_sweep trains head_epochs 2 + finetune_epochs 2: a trial's steps are 0 to 3.
REFUSED = [
    ({"pruner": "{kind: successive_halving, min_finetune_epochs: 3}"},
     "pruner.min_finetune_epochs (3) is above training.finetune_epochs (2)"),
    ({"pruner": "{kind: median}"},  # the default 4, never set, is still named
     "pruner.min_finetune_epochs (4, the default) is above training.finetune_epochs (2)"),
    ({"pruner": "{kind: hyperband, min_finetune_epochs: 1}",
      "training": "{head_epochs: 2, finetune_epochs: 0}"},
     "pruner.min_finetune_epochs (1) is above training.finetune_epochs (0)"),
    ({"pruner": "{kind: median, min_finetune_epochs: 0, n_warmup_steps: 4}"},
     "pruner.n_warmup_steps (4) is not below a trial's 4 epochs"),
    ({"pruner": "{kind: successive_halving, min_finetune_epochs: 0, min_resource: 4}"},
     "pruner.min_resource (4) is not below a trial's 4 epochs"),
    ({"pruner": "{kind: hyperband, min_finetune_epochs: 1}",
      "training": "{head_epochs: 1, finetune_epochs: 1}"},
     "pruner.min_resource (2, the default) is not below a trial's 2 epochs"),
    ({"pruner": "{kind: median, min_finetune_epochs: 0, patience: 3}"},
     "pruner.patience (3) needs more than patience + 1"),
    ({"pruner": "{kind: median, min_finetune_epochs: 0, min_resource: 2}"},
     "key 'pruner': min_resource is an option of the successive_halving and hyperband pruners"),
    ({"pruner": "{kind: hyperband, min_finetune_epochs: 0, n_warmup_steps: 1}"},
     "key 'pruner': n_warmup_steps is an option of the median pruner"),
    ({"sampler": "{kind: random, n_startup_trials: 3}"},
     "key 'sampler': n_startup_trials is TPE's"),
    ({"finalists": "{reevaluate: off, folds: 3}"},
     "key 'finalists': folds acts only when the finalists are cross-validated"),
    ({"finalists": "{reevaluate: off, deliver: ensemble}"}, "key 'finalists': deliver acts only"),
    ({"finalists": "{reevaluate: off, probe_competes: false}"},
     "key 'finalists': probe_competes acts only"),
    ({"finalists": "{reevaluate: on, small_data_images: 500}"},
     "key 'finalists': small_data_images decides whether to cross-validate only under "
     "reevaluate: auto"),
    ({"engine": "keras-tuner", "pruner": None, "tuner": "{kind: bayesian, factor: 2}"},
     "key 'tuner': factor is an option of keras-tuner's hyperband"),
]

ACCEPTED = [
    {"pruner": "{kind: successive_halving, min_finetune_epochs: 2, min_resource: 3}"},
    {"pruner": "{kind: median, min_finetune_epochs: 0, n_warmup_steps: 3, patience: 2}"},
    # Switched off on purpose: the settings kept for a later kind are not judged.
    {"pruner": "{kind: none, min_finetune_epochs: 9, min_resource: 9, patience: 9}"},
    # keras-tuner has no pruner: the optuna pruner's defaults stand unused, not wrong.
    {"engine": "keras-tuner", "pruner": None, "training": "{head_epochs: 1, finetune_epochs: 1}"},
    {"engine": "keras-tuner", "pruner": None, "tuner": "{kind: hyperband, factor: 2}"},
    {"sampler": "{kind: tpe, n_startup_trials: 3}"},
    {"finalists": "{reevaluate: auto, folds: 3, small_data_images: 500, deliver: ensemble}"},
    {"finalists": "{reevaluate: on, folds: 3, probe_competes: false}"},
    {"finalists": "{reevaluate: off, k: 2}"},
]


def sweep_with(tmp_path: Path, overrides: dict[str, str | None]) -> Path:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None))
    return write_yaml(tmp_path / "sweep.yaml", tiny_sweep(tmp_path / "data", space, **overrides))


@pytest.mark.parametrize("overrides, expected", REFUSED, ids=[m[:50] for _, m in REFUSED])
def test_an_option_that_can_never_act_is_an_error(tmp_path: Path, overrides: dict[str, str],
                                                  expected: str) -> None:
    path = sweep_with(tmp_path, overrides)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert "remove it" in message or "Lower" in message  # the fix, not only the fault


@pytest.mark.parametrize("overrides", ACCEPTED, ids=[str(o)[:60] for o in ACCEPTED])
def test_an_option_that_can_act_is_accepted(tmp_path: Path, overrides: dict[str, str]) -> None:
    load_sweep(sweep_with(tmp_path, overrides))


def test_a_recorded_sweep_is_replayed_even_if_an_option_of_it_cannot_act(tmp_path: Path) -> None:
    """A study created before these rules keeps working: its recorded texts are replayed."""
    path = sweep_with(tmp_path, {"pruner": "{kind: successive_halving, min_finetune_epochs: 3}"})
    space = tmp_path / "space.yaml"
    replayed = load_sweep(path, path.read_text(), space.read_text())
    assert replayed.config.pruner.min_finetune_epochs == 3
