"""``tlsweep init``: the files it writes load and pass the run's checks, its defaults follow the
data, and bad input is one message, exit 2, with nothing written. No TensorFlow, except the
shared-data cases, whose check pre-flights the weights in a subprocess (marked slow)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import needs_shared, run_cli, write_class_images
from tlsweep.cli import _init_budget as init_budget
from tlsweep.cli import _initscan as initscan
from tlsweep.cli import _scaffold as scaffold
from tlsweep.config import load_sweep
from tlsweep.config._space import WeightingChoices
from tlsweep.datasets import scan_classes, stratified_splits


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """Stands in for a no-top weights file: an HDF5 file with a group, which is all init checks
    without TensorFlow (run's pre-flight, which loads the weights, is not run here)."""
    return fake_weights(tmp_path / "weights" / "mobilenet_v2_1.0_notop.weights.h5")


def fake_weights(path: Path) -> Path:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as weights:
        weights.create_group("layers").create_dataset("kernel", data=np.zeros((3, 3)))
    return path


def digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def init(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return run_cli("init", *args, cwd=cwd, env=env, timeout=120)


def test_class_folders_give_files_that_load_and_a_second_init_refuses(
        tmp_path: Path, weights: Path) -> None:
    data = write_class_images(tmp_path / "my pets!", {"cats": 90, "dogs": 30})
    out = tmp_path / "sweeps" / "pets.yaml"
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"tlsweep run {out}" in done.stdout and "Traceback" not in done.stderr
    space_path = out.with_name("pets_space.yaml")
    sweep = load_sweep(out)
    config = sweep.config
    assert sweep.config.search_space == space_path.resolve()
    assert config.study == "pets" and config.data.dir == data.resolve()
    assert isinstance(sweep.space.class_weighting, WeightingChoices)  # 90 against 30
    assert config.objective == "val_balanced_accuracy"
    assert config.data.image_size == 32  # 16 px images, raised to the backbones' 32 px
    assert config.budget.timeout == 1800.0 and config.budget.trials >= 3
    assert config.data.test_split is not None, "120 images leave 30 for a test set"
    assert config.finalists.anchor is not None, "small data: the anchor recipe is a finalist"
    _, files, _ = scan_classes(data, "data.dir", out)
    labels = np.array([label for _, label in files])
    splits = stratified_splits(labels, config.data.split, config.data.test_split, config.seed)
    for name, index in splits.items():
        assert set(labels[index]) == {0, 1}, f"a class is missing from {name}"
    choice = sweep.space.backbone_choices()["MobileNetV2"]
    assert Path(choice.weights) == weights.resolve()
    text = out.read_text()
    assert "# " in text and "image_size" in text and "tlsweep run" in text  # commented
    before = digest(out, space_path)
    again = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert str(out) in " ".join(again.stderr.split()) and "--out" in again.stderr
    assert digest(out, space_path) == before


def test_default_out_is_the_folder_name_in_the_working_directory(
        tmp_path: Path, weights: Path) -> None:
    data = write_class_images(tmp_path / "flower photos", {"a": 20, "b": 20})
    work = tmp_path / "work"
    work.mkdir()
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--time", "1h", cwd=work)
    assert done.returncode == 0, done.stderr
    assert sorted(listing(work)) == ["flower_photos.yaml", "flower_photos_space.yaml"]
    sweep = load_sweep(work / "flower_photos.yaml")
    assert sweep.space.class_weighting == "none"  # balanced: a plain value fixes it
    assert sweep.config.objective == "val_accuracy" and sweep.config.budget.timeout == 3600
    assert sweep.config.data.test_split is None, "40 images are too few for a test set"
    assert "optimistic" in done.stdout
    # Relative paths, since the data, the weights and the files share a folder.
    assert "dir: ../flower photos" in (work / "flower_photos.yaml").read_text()


def test_no_tensorflow_is_imported(tmp_path: Path, weights: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 10, "b": 10})
    code = ("import sys\nfrom tlsweep.cli import main\n"
            f"sys.argv = ['tlsweep', 'init', {str(data)!r}, '--weights', "
            f"'MobileNetV2={weights}', '--out', {str(tmp_path / 'x.yaml')!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TF' if 'tensorflow' in sys.modules else 'no TF')\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip().endswith("no TF"), done.stdout + done.stderr
    assert (tmp_path / "x.yaml").is_file()


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_train_val_test_folders(tmp_path: Path, weights: Path, val_name: str) -> None:
    data = tmp_path / "split"
    for name, count in (("train", 30), (val_name, 10), ("test", 10)):
        write_class_images(data / name, {"a": count, "b": count // 2})
    out = tmp_path / "s.yaml"
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    config = load_sweep(out).config.data
    assert config.dir is None and config.val_split is None and config.test_split is None
    assert (config.train_dir, config.val_dir, config.test_dir) == (
        data / "train", data / val_name, data / "test")


def test_train_and_test_without_val_splits_train(tmp_path: Path, weights: Path) -> None:
    data = tmp_path / "split"
    for name, count in (("train", 40), ("test", 10)):
        write_class_images(data / name, {"a": count, "b": count})
    out = tmp_path / "s.yaml"
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    config = load_sweep(out).config.data
    assert config.dir == data / "train" and config.val_split and config.test_dir == data / "test"
    assert config.test_split is None


def test_train_val_without_test_notes_optimism(tmp_path: Path, weights: Path) -> None:
    data = tmp_path / "split"
    for name in ("train", "val"):
        write_class_images(data / name, {"a": 10, "b": 10})
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(tmp_path / "s.yaml"))
    assert done.returncode == 0, done.stderr
    assert "no test set" in done.stdout and "optimistic" in done.stdout
    assert "no test set" in (tmp_path / "s.yaml").read_text()


def test_copies_that_would_empty_a_validation_class_keep_them(
        tmp_path: Path, weights: Path) -> None:
    data = tmp_path / "split"
    write_class_images(data / "train", {"a": 10, "b": 10})
    write_class_images(data / "val", {"a": 3, "b": 1}, seed=1)
    shutil.copyfile(data / "train" / "b" / "b_000.png", data / "val" / "b" / "b_000.png")
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(tmp_path / "s.yaml"))
    assert done.returncode == 0, done.stderr
    assert load_sweep(tmp_path / "s.yaml").config.data.duplicates == "keep"
    assert "duplicates" in done.stdout and "exact" in done.stdout


def test_unreadable_files_are_reported_and_not_counted(tmp_path: Path, weights: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 10, "b": 10})
    from PIL import Image

    Image.new("P", (20, 20)).save(data / "a" / "placeholder.gif")
    (data / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(20))
    done = init(str(data), "--weights", f"MobileNetV2={weights}", "--out", str(tmp_path / "s.yaml"))
    assert done.returncode == 0, done.stderr
    assert "placeholder.gif" in done.stdout and "broken.jpg" in done.stdout
    assert "20 images" in done.stdout


def test_no_weights_anywhere_refuses_and_names_weights(tmp_path: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 10, "b": 10})
    before = listing(tmp_path)
    done = init(str(data), "--out", str(tmp_path / "out" / "s.yaml"),
                env={"TLSWEEP_OFFLINE": "1", "KERAS_HOME": str(tmp_path / "empty")})
    message = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--weights MobileNetV2=" in message and "Keras cache" in message
    assert listing(tmp_path) == before


def test_imagenet_weights_in_the_keras_cache_are_used(tmp_path: Path) -> None:
    data = write_class_images(tmp_path / "data", {"a": 10, "b": 10})
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    (cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").write_bytes(b"")
    out = tmp_path / "s.yaml"
    done = init(str(data), "--out", str(out),
                env={"TLSWEEP_OFFLINE": "1", "KERAS_HOME": str(tmp_path / "keras")})
    assert done.returncode == 0, done.stderr
    choices = load_sweep(out).space.backbone_choices()
    assert list(choices) == ["MobileNetV2"] and choices["MobileNetV2"].weights == "imagenet"


def _bad(tmp_path: Path, weights: Path, case: str) -> tuple[list[str], str]:
    data = write_class_images(tmp_path / "data", {"a": 10, "b": 10})
    out = ["--out", str(tmp_path / "out" / "s.yaml")]
    good = ["--weights", f"MobileNetV2={weights}"]
    text = tmp_path / "notes.txt"
    text.write_text("x")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "img.png").write_bytes(b"")
    one = write_class_images(tmp_path / "one", {"a": 5})
    cases = {
        "missing": ([str(tmp_path / "nope"), *good, *out], "does not exist"),
        "a file": ([str(text), *good, *out], "is a file, not a folder"),
        "no classes": ([str(flat), *good, *out], "no class sub-folders"),
        "one class": ([str(one), *good, *out], "a single class"),
        "weights without =": ([str(data), "--weights", str(weights), *out], "NAME=FILE"),
        "unknown backbone": ([str(data), "--weights", f"Mobile={weights}", *out],
                             "not a registered backbone"),
        "missing weights": ([str(data), "--weights", "MobileNetV2=/no/such.weights.h5", *out],
                            "does not exist"),
        "not h5": ([str(data), "--weights", f"MobileNetV2={text}", *out], ".h5"),
        "time": ([str(data), *good, "--time", "soon", *out], "--time"),
        "zero time": ([str(data), *good, "--time", "0", *out], "--time"),
        "out not yaml": ([str(data), *good, "--out", str(tmp_path / "s.txt")], ".yaml"),
    }
    return cases[case]


BAD = ["missing", "a file", "no classes", "one class", "weights without =", "unknown backbone",
       "missing weights", "not h5", "time", "zero time", "out not yaml"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_message_and_writes_nothing(
        tmp_path: Path, weights: Path, case: str) -> None:
    args, expected = _bad(tmp_path, weights, case)
    before = listing(tmp_path)
    done = init(*args)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert expected in message, message
    assert len(done.stderr.strip().splitlines()) <= 6, done.stderr
    assert listing(tmp_path) == before


# ----------------------------------------------------------------------------- defaults, in-process
def test_more_time_buys_more_trials_and_less_time_cheaper_ones() -> None:
    plans = [init_budget.plan_budget(s, [224, 160, 128, 96], (2000, 500, 500), 1.0, 2.0)
             for s in (600, 1800, 7200)]
    # More time buys larger images, then longer trials, then more of them.
    bought = [(p.size, p.head + p.finetune, p.trials) for p in plans]
    assert bought == sorted(bought)
    assert (plans[0].size, plans[0].head + plans[0].finetune) < (224, 8)
    assert (plans[2].size, plans[2].head, plans[2].finetune) == (224, *init_budget.EPOCHS[0])
    assert plans[2].trials <= init_budget.MAX_TRIALS
    assert not any(p.anchor for p in plans), "2,500 train+val images: no cross-validation"


def test_small_data_charges_the_anchor_recipes_folds() -> None:
    plan = init_budget.plan_budget(3600, [128], (200, 100, 0), 1.0, 2.0)
    assert plan.anchor
    anchor = (init_budget.FINALISTS.folds - 1) * init_budget.estimate(
        128, init_budget.ANCHOR.total_epochs, 300, 0, 1.0, 2.0)
    recipes = (init_budget.FINALISTS.k * (init_budget.FINALISTS.folds - 1) + 1) * \
        init_budget.estimate(128, plan.head + plan.finetune, 300, 0, 1.0, 2.0)
    assert plan.finalists_s > anchor + recipes


def test_image_size_and_study_names() -> None:
    assert scaffold.choose_size([500, 375, 333], 32)[0] == 224
    assert scaffold.choose_size([100, 130, 128], 32)[0] == 128
    assert scaffold.choose_size([20, 16], 32)[0] == 32
    assert scaffold.choose_size([80, 80], 71)[0] == 96  # Xception's 71 px
    assert scaffold.sanitise("my pets!") == "my_pets_" and scaffold.sanitise("__x") == "x"
    assert scaffold.sanitise("ünï") == "n_" and scaffold.sanitise("...") == "sweep"
    assert init_budget.duration(5400) == "1h30m" and init_budget.duration(45) == "45s"


def test_a_large_folder_is_sampled(tmp_path: Path, weights: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_class_images(tmp_path / "data", {"a": 30, "b": 30})
    monkeypatch.setattr(initscan, "FULL_SCAN_FILES", 20)
    lines = scaffold.init(data, tmp_path / "s.yaml", [f"MobileNetV2={weights}"], "30m")
    assert any("a sample was read" in line for line in lines)
    assert yaml.safe_load((tmp_path / "s.yaml").read_text())["data"]["dir"]


# ----------------------------------------------------------------------------- the shared data
@pytest.mark.slow
@pytest.mark.parametrize("folder", ["flowers", "hymenoptera_data"])
def test_shared_data_passes_the_runs_checks(tmp_path: Path, folder: str) -> None:
    shared = needs_shared()
    weights = shared / "weights" / "mobilenet_v2_1.0_notop.weights.h5"
    out = tmp_path / f"{folder}.yaml"
    done = init(str(shared / "data" / folder), "--weights", f"MobileNetV2={weights}",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    from tlsweep.sweep import check

    plan = check(load_sweep(out), tmp_path / "results")  # loads the weights in a subprocess
    assert set(plan.backbones) == {"MobileNetV2"}
