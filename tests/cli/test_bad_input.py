"""Bad input at every entry point, table-driven, through the real command line.

Each case asserts: the documented exit code (2), one short message that names the file, key or
path, no traceback, and files untouched: no study created where there was none, and an existing
study's files byte-identical. Cases needing TensorFlow (the weights pre-flight) are marked slow.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest

from tests.conftest import (
    needs_shared,
    run_cli,
    tiny_space,
    tiny_sweep,
    write_class_images,
    write_yaml,
)
from tests.store.test_parquet import make_study
from tlsweep.store import write_results

NO_TF_SPACE = "{choices: {MobileNetV2: {weights: none}}}"


@dataclass
class Workspace:
    root: Path
    data: Path
    space: Path
    results: Path
    env: dict[str, str] = field(default_factory=dict)

    def sweep(self, name: str = "sweep.yaml", space: str | None = None,
              **overrides: str | None) -> Path:
        space_path = self.space if space is None else write_yaml(
            self.root / f"{name}.space.yaml", space)
        overrides.setdefault("data", f"{{dir: {self.data}, val_split: 0.3, image_size: 32}}")
        return write_yaml(self.root / name, tiny_sweep(self.data, space_path, **overrides))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def make_workspace(tmp_path: Path) -> Workspace:
    data = write_class_images(tmp_path / "data", {"a": 8, "b": 8}, size=32)
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None, backbone=NO_TF_SPACE))
    results = tmp_path / "results"
    # An existing study, made without TensorFlow: its files must come out byte-identical.
    directory = results / "demo"
    directory.mkdir(parents=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{directory / 'study.db'}")
    study = make_study_in(storage)
    write_results(study, directory)
    storage.engine.dispose()
    return Workspace(tmp_path, data, space, results)


def make_study_in(storage: optuna.storages.BaseStorage) -> optuna.Study:
    source = make_study()
    study = optuna.create_study(study_name="demo", storage=storage, direction="maximize")
    for key, value in source.user_attrs.items():
        study.set_user_attr(key, value)
    for trial in source.trials:
        study.add_trial(trial)
    return study


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# A case: a name, a function that prepares the workspace and returns the CLI arguments, and
# the words the message must hold.
Case = tuple[str, Callable[[Workspace], list[str]], str]


def _write(ws: Workspace, name: str, text: str) -> Path:
    return write_yaml(ws.root / name, text)


def _bytes(ws: Workspace, name: str, data: bytes) -> Path:
    path = ws.root / name
    path.write_bytes(data)
    return path


def _data(ws: Workspace, value: str) -> list[str]:
    return ["run", str(ws.sweep(data=value.replace("DATA", str(ws.data))))]


def _space(ws: Workspace, **lines: str) -> list[str]:
    return ["run", str(ws.sweep(space=tiny_space(None, **{"backbone": NO_TF_SPACE, **lines})))]


def _env(ws: Workspace, key: str, value: str, args: list[str]) -> list[str]:
    ws.env[key] = value
    return args


def _small_class(ws: Workspace) -> list[str]:
    write_class_images(ws.root / "small", {"a": 8, "b": 2}, size=32)
    return ["run", str(ws.sweep(data=f"{{dir: {ws.root / 'small'}, val_split: 0.2, "
                                     f"test_split: 0.2, image_size: 32}}"))]


def _single_class(ws: Workspace) -> list[str]:
    write_class_images(ws.root / "one", {"a": 8}, size=32)
    return ["run", str(ws.sweep(data=f"{{dir: {ws.root / 'one'}, image_size: 32}}"))]


def _empty_class(ws: Workspace) -> list[str]:
    (ws.data / "empty").mkdir()
    return ["run", str(ws.sweep())]


def _mismatched_test(ws: Workspace) -> list[str]:
    other = write_class_images(ws.root / "other", {"a": 2, "c": 2}, size=32)
    return _data(ws, f"{{dir: DATA, test_dir: {other}, image_size: 32}}")


def _damaged(ws: Workspace, name: str, data: bytes, args: list[str]) -> list[str]:
    (ws.results / "demo" / name).write_bytes(data)
    return args


def _file_at(ws: Workspace, name: str) -> Path:
    path = ws.root / name
    path.write_text("a file, not a folder")
    return path


CASES: list[Case] = [
    # ---------------------------------------------------------------- the sweep file
    ("unknown key", lambda ws: ["run", str(ws.sweep(epochs="3"))], "unknown key 'epochs'"),
    ("unknown nested key", lambda ws: ["run", str(ws.sweep(training="{head_epoch: 2}"))],
     "unknown key 'head_epoch'"),
    ("wrong type", lambda ws: ["run", str(ws.sweep(seed="zero"))], "key 'seed'"),
    ("negative seed", lambda ws: ["run", str(ws.sweep(seed="-1"))], "key 'seed'"),
    ("seed past 32 bits", lambda ws: ["run", str(ws.sweep(seed=str(2**32)))], "key 'seed'"),
    ("trials 0 in the file", lambda ws: ["run", str(ws.sweep(budget="{trials: 0}"))],
     "budget.trials"),
    ("bad duration in the file", lambda ws: ["run", str(ws.sweep(budget="{timeout: soon}"))],
     "is not a duration"),
    ("unknown pruner", lambda ws: ["run", str(ws.sweep(pruner="{kind: patience}"))],
     "pruner.kind"),
    ("unknown sampler", lambda ws: ["run", str(ws.sweep(sampler="{kind: grid}"))],
     "sampler.kind"),
    ("unknown objective", lambda ws: ["run", str(ws.sweep(objective="val_loss"))],
     "key 'objective'"),
    ("bad study name", lambda ws: ["run", str(ws.sweep(study="'../escape'"))], "key 'study'"),
    ("finalists k 0", lambda ws: ["run", str(ws.sweep(finalists="{k: 0}"))], "finalists.k"),
    ("finalists folds 1", lambda ws: ["run", str(ws.sweep(finalists="{folds: 1}"))],
     "finalists.folds"),
    ("tuner with optuna", lambda ws: ["run", str(ws.sweep(tuner="{kind: random}"))],
     "'tuner' configures keras-tuner"),
    ("not YAML", lambda ws: ["run", str(_write(ws, "bad.yaml", "study: [unclosed\n"))],
     "not valid YAML"),
    ("not a mapping", lambda ws: ["run", str(_write(ws, "list.yaml", "- a\n- b\n"))],
     "expected a mapping"),
    ("not UTF-8", lambda ws: ["run", str(_bytes(ws, "latin.yaml", "study: caf\xe9\n"
                                                .encode("latin-1")))], "not UTF-8"),
    ("sweep file missing", lambda ws: ["run", str(ws.root / "absent.yaml")], "not found"),
    ("search space missing", lambda ws: ["run", str(_write(ws, "s.yaml", tiny_sweep(
        ws.data, ws.root / "absent-space.yaml")))], "search-space file not found"),
    # ---------------------------------------------------------------- data
    ("data dir missing", lambda ws: _data(ws, f"{{dir: {ws.root / 'nowhere'}}}"),
     "does not exist"),
    ("dir and train_dir", lambda ws: _data(ws, "{dir: DATA, train_dir: DATA, val_dir: DATA}"),
     "not both"),
    ("train_dir without val_dir", lambda ws: _data(ws, "{train_dir: DATA}"), "val_dir"),
    ("val_split above 1", lambda ws: _data(ws, "{dir: DATA, val_split: 1.5}"),
     "data.val_split"),
    ("splits sum to 1", lambda ws: _data(ws, "{dir: DATA, val_split: 0.5, test_split: 0.5}"),
     "test_split + val_split must be below 1"),
    ("test_split and test_dir", lambda ws: _data(
        ws, "{dir: DATA, test_split: 0.2, test_dir: DATA}"), "not both"),
    ("test_split with train_dir", lambda ws: _data(
        ws, "{train_dir: DATA, val_dir: DATA, test_split: 0.2}"), "test_split only applies"),
    ("image size too small", lambda ws: _data(ws, "{dir: DATA, image_size: 4}"),
     "data.image_size"),
    ("image size below the backbone's", lambda ws: _data(ws, "{dir: DATA, image_size: 16}"),
     "at least 32 px"),
    ("unknown duplicates policy", lambda ws: _data(ws, "{dir: DATA, duplicates: merge}"),
     "data.duplicates"),
    ("class too small for every split", _small_class, "too few to appear in every split"),
    ("a single class", _single_class, "single class"),
    ("an empty class folder", _empty_class, "is empty"),
    ("test classes differ", _mismatched_test, "data.test_dir: its classes"),
    # ---------------------------------------------------------------- the search space
    ("unknown backbone", lambda ws: _space(ws, backbone="{choices: {MobileNetV9: {}}}"),
     "unknown backbone"),
    ("low above high", lambda ws: _space(ws, head_lr="{low: 0.1, high: 0.01}"),
     "must not exceed high"),
    ("log range from 0", lambda ws: _space(ws, finetune_lr="{low: 0.0, high: 0.1, log: true}"),
     "log range needs low > 0"),
    ("negative learning rate", lambda ws: _space(ws, head_lr="-0.1"), "learning rate"),
    ("depth above 1", lambda ws: _space(ws, unfreeze_depth="{low: 0.0, high: 1.5}"),
     "unfreeze_depth"),
    ("unknown weighting", lambda ws: _space(ws, class_weighting="{choices: [inverse]}"),
     "class_weighting"),
    ("weights file missing", lambda ws: _space(
        ws, backbone=f"{{choices: {{MobileNetV2: {{weights: {ws.root / 'no.weights.h5'}}}}}}}"),
     "does not exist"),
    ("weights not .h5", lambda ws: _space(
        ws, backbone=f"{{choices: {{MobileNetV2: {{weights: {ws.space}}}}}}}"),
     "not a .weights.h5 file"),
    ("custom backbone without preprocessing", lambda ws: _space(
        ws, backbone=f"{{choices: {{Mine: {{model: {_bytes(ws, 'm.keras', b'x')}}}}}}}"),
     "must declare its preprocessing"),
    ("custom backbone not a .keras archive", lambda ws: _space(
        ws, backbone=f"{{choices: {{Mine: {{model: {_bytes(ws, 'c.keras', b'not a zip')}, "
                     f"preprocessing: unit}}}}}}"), "not a .keras archive"),
    # ---------------------------------------------------------------- options and environment
    ("--trials 0", lambda ws: ["run", str(ws.sweep()), "--trials", "0"], "--trials"),
    ("--trials -1", lambda ws: ["run", str(ws.sweep()), "--trials", "-1"], "--trials"),
    ("--timeout nonsense", lambda ws: ["run", str(ws.sweep()), "--timeout", "soon"],
     "--timeout"),
    ("--gpus nonsense", lambda ws: ["run", str(ws.sweep()), "--gpus", "a,b"], "--gpus"),
    ("--results-dir is a file", lambda ws: ["run", str(ws.sweep()), "--results-dir",
                                            str(_file_at(ws, "results-file"))],
     "is a file, not a folder"),
    ("TLSWEEP_CACHE is a file", lambda ws: _env(ws, "TLSWEEP_CACHE",
                                                str(_file_at(ws, "cache-file")),
                                                ["run", str(ws.sweep())]),
     "TLSWEEP_CACHE"),
    ("TLSWEEP_THREADS not a number", lambda ws: _env(ws, "TLSWEEP_THREADS", "two",
                                                     ["run", str(ws.sweep())]),
     "TLSWEEP_THREADS"),
    ("TLSWEEP_FAILPOINT malformed", lambda ws: _env(ws, "TLSWEEP_FAILPOINT", "trial=1:boom",
                                                    ["run", str(ws.sweep())]),
     "TLSWEEP_FAILPOINT"),
    ("checkpoint_dir is a file", lambda ws: ["run", str(ws.sweep(
        execution=f"{{checkpoint_dir: {_file_at(ws, 'ckpt-file')}}}"))],
     "execution.checkpoint_dir"),
    ("run an existing study", lambda ws: ["run", str(ws.sweep(study="demo"))],
     "tlsweep resume demo"),
    # ---------------------------------------------------------------- inspection
    ("leaderboard of no study", lambda ws: ["leaderboard", "nothing"], "no leaderboard"),
    ("--top 0", lambda ws: ["leaderboard", "demo", "--top", "0"], "--top"),
    ("--top -1", lambda ws: ["leaderboard", "demo", "--top", "-1"], "--top"),
    ("--format unknown", lambda ws: ["leaderboard", "demo", "--format", "xml"], "--format"),
    ("--sort unknown", lambda ws: ["leaderboard", "demo", "--sort", "speed"], "--sort"),
    ("--state unknown", lambda ws: ["leaderboard", "demo", "--state", "done"], "--state"),
    ("show an absent trial", lambda ws: ["show", "demo", "99"], "trial 99 is not in study"),
    ("importance evaluator unknown", lambda ws: ["importance", "demo", "--evaluator", "shap"],
     "--evaluator"),
    ("truncated leaderboard", lambda ws: _damaged(ws, "leaderboard.parquet", b"PAR1\x00",
                                                  ["leaderboard", "demo"]), "--refresh"),
    ("empty curves file", lambda ws: _damaged(ws, "curves.parquet", b"",
                                              ["show", "demo", "0"]), "--refresh"),
    ("truncated leaderboard, diagnose", lambda ws: _damaged(ws, "leaderboard.parquet", b"PAR",
                                                            ["diagnose", "demo"]), "--refresh"),
    ("truncated leaderboard, importance", lambda ws: _damaged(
        ws, "leaderboard.parquet", b"PAR1", ["importance", "demo"]), "--refresh"),
    ("truncated leaderboard, report", lambda ws: _damaged(
        ws, "leaderboard.parquet", b"PAR1", ["report", "demo"]), "--refresh"),
    ("resume of no study", lambda ws: ["resume", "nothing"], "no study storage here"),
    ("resume a damaged study.db", lambda ws: _damaged(ws, "study.db", b"garbage" * 200,
                                                      ["resume", "demo"]),
     "cannot be read"),
    ("resume with a closed port", lambda ws: ["resume", "demo", "--storage",
                                              "postgresql://u:secret@127.0.0.1:9/x"],
     "cannot open the storage"),
]


@pytest.mark.parametrize("name,prepare,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_touches_nothing(
        ws: Workspace, name: str, prepare: Callable[[Workspace], list[str]],
        expected: str) -> None:
    args = prepare(ws)
    before = snapshot(ws.results)
    roots = {p.name for p in ws.root.iterdir()}
    done = run_cli(*args, *([] if "--results-dir" in args else
                            ["--results-dir", str(ws.results)]),
                   env={"TLSWEEP_RESULTS": str(ws.results), **ws.env}, timeout=300)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    assert expected in message, message
    assert len(done.stderr.strip().splitlines()) <= 8, done.stderr  # one message, wrapped
    assert "secret" not in done.stderr + done.stdout
    assert snapshot(ws.results) == before, "an existing study's files changed"
    assert {p.name for p in ws.root.iterdir()} == roots, "something was created"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text", "truncated", "another architecture"])
def test_bad_weights_are_refused_before_a_study_exists(ws: Workspace, kind: str) -> None:
    shared_weights = needs_shared() / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
    target = ws.root / f"{kind.replace(' ', '-')}.weights.h5"
    name = "MobileNetV2"
    if kind == "text":
        target.write_text("not weights")
    elif kind == "truncated":
        target.write_bytes(shared_weights.read_bytes()[:200_000])
    else:
        shutil.copyfile(shared_weights, target)
        name = "MobileNetV3Small"
    args = _space(ws, backbone=f"{{choices: {{{name}: {{weights: {target}}}}}}}")
    done = run_cli(*args, "--results-dir", str(ws.results), timeout=300)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"backbone.choices.{name}.weights" in message and target.name in message
    assert not (ws.results / "tiny").exists()


@pytest.mark.slow
def test_a_systematic_failure_stops_the_sweep_and_resume_continues_after_the_fix(
        ws: Workspace, tiny_backbone: Path) -> None:
    """A backbone that loads but cannot take RGB images fails every trial in set-up: the sweep
    stops at the second with exit 2, and once the file is fixed `resume` runs the whole budget."""
    import keras

    gray = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3, name="c")])
    backbone = ws.root / "backbone.keras"
    gray.save(backbone)
    space = write_yaml(ws.root / "gray-space.yaml", tiny_space(backbone))
    sweep = ws.sweep("gray.yaml", space=space.read_text(),
                     data=f"{{dir: {ws.data}, val_split: 0.3, image_size: 16}}",
                     budget="{trials: 3}", finalists="{k: 1, reevaluate: off}")
    env = {"TLSWEEP_RESULTS": str(ws.results)}
    done = run_cli("run", str(sweep), env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "failed before their first epoch with the same error" in " ".join(done.stderr.split())
    assert "tlsweep resume tiny" in done.stderr and "Traceback" not in done.stderr
    shutil.copyfile(tiny_backbone, backbone)  # the fix
    again = run_cli("resume", "tiny", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    study = optuna.load_study(study_name="tiny",
                              storage=f"sqlite:///{ws.results / 'tiny' / 'study.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3  # the whole budget, after all
    assert states.count(optuna.trial.TrialState.FAIL) == 2  # the two attempts, kept as record


@pytest.mark.slow
def test_two_runs_of_one_new_study_started_together(ws: Workspace, tiny_backbone: Path) -> None:
    """The loser is told the study exists (or is running), never a traceback or a storage
    error; the winner's study is whole."""
    import subprocess
    import sys

    space = write_yaml(ws.root / "race-space.yaml", tiny_space(tiny_backbone))
    sweep = ws.sweep("race.yaml", space=space.read_text(),
                     data=f"{{dir: {ws.data}, val_split: 0.3, image_size: 16}}",
                     budget="{trials: 1}", finalists="{k: 1, reevaluate: off}")
    env = {**__import__("os").environ, "TLSWEEP_RESULTS": str(ws.results)}
    for attempt in range(3):
        study = f"race{attempt}"
        text = sweep.read_text().replace("study: tiny", f"study: {study}")
        path = write_yaml(ws.root / f"{study}.yaml", text)
        runs = [subprocess.Popen([sys.executable, "-m", "tlsweep", "run", str(path)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        outputs = [run.communicate(timeout=600) for run in runs]
        codes = sorted(run.returncode for run in runs)
        assert codes == [0, 2], (codes, [o[1][-1500:] for o in outputs])
        loser = next(o for run, o in zip(runs, outputs, strict=True) if run.returncode == 2)[1]
        message = " ".join(loser.split())
        assert "Traceback" not in loser and "cannot open the storage" not in message, loser
        assert "tlsweep resume" in message or "being run by process" in message, loser
        stored = optuna.load_study(study_name=study,
                                   storage=f"sqlite:///{ws.results / study / 'study.db'}")
        assert [t.state.name for t in stored.trials] == ["COMPLETE"]


def test_plain_seconds_are_a_timeout(tmp_path: Path) -> None:
    from tlsweep.config import parse_duration

    assert parse_duration("3600") == 3600.0 == parse_duration("1h")
    assert parse_duration("1h30m") == 5400.0
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("1h30")  # minutes or seconds? refused rather than guessed


def test_diagnose_of_a_study_without_a_complete_trial_says_so(ws: Workspace) -> None:
    directory = ws.results / "nothing-done"
    directory.mkdir()
    storage = optuna.storages.RDBStorage(f"sqlite:///{directory / 'study.db'}")
    study = optuna.create_study(study_name="nothing-done", storage=storage)
    study.set_user_attr("objective", "val_accuracy")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"error": "RuntimeError: boom"}))
    write_results(study, directory)
    storage.engine.dispose()
    done = run_cli("diagnose", "nothing-done", "--results-dir", str(ws.results))
    assert done.returncode == 0 and "no complete trial yet" in done.stdout, done.stdout


def test_ctrl_c_while_decoding_says_how_to_resume(ws: Workspace) -> None:
    """The study exists before the (slow) decoding, so an interrupt there must say how to
    continue it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np
    from PIL import Image

    many = ws.root / "many"
    rng = np.random.default_rng(0)
    # Noise, not flat colour: flat PNGs decode in about a second in all, a short window for a
    # test process on a loaded machine to see the staging folder in.
    for label in ("a", "b"):
        (many / label).mkdir(parents=True)
        for i in range(400):
            pixels = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(many / label / f"{i}.png", compress_level=1)
    sweep = ws.sweep("many.yaml", data=f"{{dir: {many}, image_size: 32}}")

    def ctrl_c_as_at_a_terminal() -> None:
        # A shell starts a background job with SIGINT ignored and its children inherit that, so
        # a test suite started with `&` (a CI script, nohup) ran tlsweep deaf to this test's
        # SIGINT until the sweep installed its own handler: decoding went on, trials ran, and
        # the test timed out. Reproduced with `(trap '' INT; python -m pytest -k ctrl_c)`.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    run = subprocess.Popen([sys.executable, "-m", "tlsweep", "run", str(sweep), "--results-dir",
                            str(ws.results)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env={**os.environ, "TLSWEEP_CACHE": str(ws.root / "c")},
                           preexec_fn=ctrl_c_as_at_a_terminal)
    # The decoding has begun once its staging folder exists (the study exists by then); waiting
    # for study.db alone raced the study's creation on a loaded machine.
    datasets = ws.root / "c" / "datasets"
    # Generous: before the decoding, the weights are checked in a throwaway process that
    # imports TensorFlow, which took over a minute on a loaded 2-core machine.
    deadline = time.monotonic() + 300
    while not (datasets.is_dir() and any(datasets.glob(".building-*"))) and \
            time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the decoding
    run.send_signal(signal.SIGINT)
    try:
        out, err = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # keep what it said, for a diagnosis
        run.kill()
        out, err = run.communicate()
        pytest.fail(f"tlsweep run did not exit within 120 s of SIGINT; its stdout:\n"
                    f"{out[-2000:]}\nits stderr:\n{err[-4000:]}")
    assert run.returncode == 130, (run.returncode, out[-1000:], err[-1000:])
    assert "tlsweep resume tiny" in out and "Traceback" not in err, (out, err)
    assert "training and" not in out, "interrupted after the decoding, not during it"
