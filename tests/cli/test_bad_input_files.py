"""Bad input in the files a sweep is read from, and a password in a storage's error, through the
real command line (issue 38): a key given twice, an option that can never act, a password that
the URL parser cut in two.

Each case asserts what tests/cli/test_bad_input.py asserts of its own cases: exit 2, one short
message that names the file and the key, no traceback, no study created and the existing one
byte-identical. A case may also name text that must appear nowhere in the output (a password).
No TensorFlow: every case is refused before the weights are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_bad_input import NO_TF_SPACE, Workspace, make_workspace, snapshot
from tests.conftest import run_cli, tiny_space


@dataclass(frozen=True)
class Case:
    name: str
    prepare: Callable[[Workspace], list[str]]  # the workspace -> the CLI arguments
    expected: tuple[str, ...]  # words the message must hold
    hidden: tuple[str, ...] = ()  # words no output may hold


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def _run(ws: Workspace, **overrides: str | None) -> list[str]:
    return ["run", str(ws.sweep(**overrides))]


def _appended(ws: Workspace, line: str) -> list[str]:
    """The sweep file with ``line`` added at its end (line 8: tiny_sweep writes 7)."""
    path = ws.sweep()
    path.write_text(path.read_text() + line)
    return ["run", str(path)]


def _space(ws: Workspace, extra: str = "", **lines: str) -> list[str]:
    text = tiny_space(None, **{"backbone": NO_TF_SPACE, **lines}) + extra
    return ["run", str(ws.sweep(space=text))]


def _storage(url: str) -> Callable[[Workspace], list[str]]:
    return lambda ws: ["resume", "demo", "--storage", url]


SPACE = "sweep.yaml.space.yaml"  # where Workspace.sweep writes a case's own search space
CASES = [
    # ---------------------------------------------------------------- a key given twice
    Case("sweep key twice", lambda ws: _appended(ws, "seed: 7\n"),
         ("sweep.yaml: line 8: key 'seed' is given twice (first on line 4)", "Keep one")),
    Case("nested sweep key twice", lambda ws: _run(
        ws, training="{head_epochs: 2, finetune_epochs: 2, head_epochs: 3}"),
        ("sweep.yaml: line 6: key 'training.head_epochs' is given twice",)),
    Case("space key twice", lambda ws: _space(ws, extra="head_lr: 0.001\n"),
         (f"{SPACE}: line 7: key 'head_lr' is given twice (first on line 3)",)),
    Case("nested space key twice", lambda ws: _space(
        ws, backbone="{choices: {MobileNetV2: {weights: none, weights: imagenet}}}"),
        (f"{SPACE}: line 1: key 'backbone.choices.MobileNetV2.weights' is given twice",)),
    # ---------------------------------------------------------------- options that never act
    Case("pruner waits past the fine-tune", lambda ws: _run(
        ws, pruner="{kind: successive_halving, min_finetune_epochs: 3}"),
        ("pruner.min_finetune_epochs (3) is above training.finetune_epochs (2)",
         "never act", "set pruner.kind: none")),
    Case("the default wait past a short fine-tune", lambda ws: _run(ws, pruner="{kind: median}"),
         ("pruner.min_finetune_epochs (4, the default) is above training.finetune_epochs (2)",)),
    Case("median warm-up past the trial", lambda ws: _run(
        ws, pruner="{kind: median, min_finetune_epochs: 0, n_warmup_steps: 9}"),
        ("pruner.n_warmup_steps (9) is not below a trial's 4 epochs",)),
    Case("first rung past the trial", lambda ws: _run(
        ws, pruner="{kind: hyperband, min_finetune_epochs: 0, min_resource: 4}"),
        ("pruner.min_resource (4) is not below a trial's 4 epochs",)),
    Case("patience past the trial", lambda ws: _run(
        ws, pruner="{kind: successive_halving, min_finetune_epochs: 0, patience: 5}"),
        ("pruner.patience (5)",)),
    Case("another pruner's option", lambda ws: _run(
        ws, pruner="{kind: median, min_finetune_epochs: 0, reduction_factor: 3}"),
        ("key 'pruner': reduction_factor is an option of the successive_halving and "
         "hyperband pruners",)),
    Case("random sampler's start-up", lambda ws: _run(
        ws, sampler="{kind: random, n_startup_trials: 2}"),
        ("key 'sampler': n_startup_trials is TPE's",)),
    Case("folds without cross-validation", lambda ws: _run(
        ws, finalists="{reevaluate: off, folds: 3}"),
        ("key 'finalists': folds acts only when the finalists are cross-validated",)),
    Case("small-data threshold under reevaluate on", lambda ws: _run(
        ws, finalists="{reevaluate: on, small_data_images: 100}"),
        ("key 'finalists': small_data_images", "reevaluate: auto")),
    Case("keras-tuner's factor for random search", lambda ws: _run(
        ws, engine="keras-tuner", pruner=None, tuner="{kind: random, factor: 2}"),
        ("key 'tuner': factor is an option of keras-tuner's hyperband",)),
    # ---------------------------------------------------------------- a password in an error
    Case("password with an unencoded @", _storage("postgresql://u:pa@Secret42@127.0.0.1:9/x"),
         ("cannot open the storage", "postgresql://u:***@127.0.0.1:9/x"),
         ("Secret42", "pa@Secret42")),
    Case("password cut at : and @", _storage("postgresql+psycopg://u:pa:Secret42@Tail99@127.0.0.1:9/x"),
         ("cannot open the storage",), ("Secret42", "Tail99")),
    Case("percent-encoded password", _storage("postgresql://u:pa%40Secret42@127.0.0.1:9/x"),
         ("cannot open the storage",), ("Secret42", "pa%40Secret42")),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_in_files_is_one_clear_error_and_touches_nothing(ws: Workspace,
                                                                    case: Case) -> None:
    args = case.prepare(ws)
    before = snapshot(ws.results)
    roots = {p.name for p in ws.root.iterdir()}
    done = run_cli(*args, "--results-dir", str(ws.results),
                   env={"TLSWEEP_RESULTS": str(ws.results), **ws.env}, timeout=300)
    output = done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert "Traceback" not in output
    for words in case.expected:
        assert words in message, message
    assert len(done.stderr.strip().splitlines()) <= 8, done.stderr  # one message, wrapped
    for secret in case.hidden:
        assert secret not in output, output
    assert snapshot(ws.results) == before, "an existing study's files changed"
    assert {p.name for p in ws.root.iterdir()} == roots, "something was created"
