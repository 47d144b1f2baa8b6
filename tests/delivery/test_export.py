"""From a folder to a model in use: init, run, export in every format, predict and evaluate.

The exported models are loaded in a fresh Python process that imports only their runtimes
(TensorFlow and Keras, LiteRT, onnxruntime), and must give the probabilities ``tlsweep predict``
gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli, write_class_images
from tests.datasets.test_data import messy_folder

pytestmark = pytest.mark.slow

SIZE = 32  # MobileNetV2's smallest input; the images are written at this size

FRESH_PROCESS = """
import json, sys
import numpy as np
from PIL import Image
import keras, tensorflow as tf
fmt, path, files = sys.argv[1], sys.argv[2], sys.argv[3:]
images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
if fmt == "keras":
    probabilities = keras.models.load_model(path).predict(images, verbose=0)
elif fmt == "savedmodel":
    serve = tf.saved_model.load(path).signatures["serving_default"]
    probabilities = next(iter(serve(tf.constant(images)).values())).numpy()
elif fmt == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(path)
    probabilities = session.run(None, {session.get_inputs()[0].name: images})[0]
else:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path)
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
assert "tlsweep" not in sys.modules
print(json.dumps(np.asarray(probabilities, dtype=float).tolist()))
"""
TOLERANCE = {"keras": 1e-5, "savedmodel": 1e-5, "tflite": 1e-4, "onnx": 1e-4}


def random_mobilenet_weights(path: Path) -> Path:
    """Weights of the right architecture, made here: the test needs no network and no files."""
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(include_top=False, weights=None,
                                   input_shape=(SIZE, SIZE, 3)).save_weights(path)
    return path


def split_folders(root: Path) -> Path:
    for split, count in (("train", 24), ("val", 10), ("test", 12)):
        write_class_images(root / split, {"cat": count, "dog": count // 2}, size=SIZE,
                           seed=len(split))
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`init` on a folder, then `run` on the written files as they are."""
    base = tmp_path_factory.mktemp("e2e")
    data = split_folders(base / "pets")
    weights = random_mobilenet_weights(base / "mobilenet_v2.weights.h5")
    env = {"TLSWEEP_RESULTS": str(base / "results"), "TLSWEEP_CACHE": str(base / "cache"),
           "KERAS_HOME": str(base / "keras"), "TLSWEEP_OFFLINE": "1"}
    init = run_cli("init", str(data), "--out", str(base / "pets.yaml"), "--weights",
                   f"MobileNetV2={weights}", "--time", "2m", env=env)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "tlsweep run" in init.stdout
    done = run_cli("run", str(base / "pets.yaml"), env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"base": base, "data": data, "results": base / "results", **{
        k: Path(v) for k, v in env.items() if k.startswith("TLSWEEP_R")}}


def _cli(study: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--results-dir", str(study["results"]),
                   env={"TLSWEEP_CACHE": str(study["base"] / "cache")})


def _predicted(study: dict[str, Path], model: str, files: list[Path]) -> np.ndarray:
    done = _cli(study, "predict", model, *map(str, files), "--top", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["file"] for r in rows] == [str(f) for f in files]
    order = ["cat", "dog"]
    return np.array([[r["p_1"] if r["class_1"] == c else r["p_2"] for c in order] for r in rows])


def test_exported_models_predict_raw_images_like_tlsweep(study: dict[str, Path]) -> None:
    out = study["base"] / "exported"
    for fmt in ("keras", "savedmodel", "tflite", "onnx"):
        done = _cli(study, "export", "pets", "--out", str(out), "--format", fmt)
        assert done.returncode == 0, done.stdout + done.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["class_names"] == ["cat", "dog"] and card["image_size"] == SIZE
    # The delivered model is a fine-tuned trial's or, when the folds cannot tell them apart
    # (here: random weights, two colours), the cheaper probe's: either is exported alike.
    assert card["backbone"] == "MobileNetV2"
    if card["trial"] is None:
        assert (card["made_by"], card["params"]) == ("probe", {})
    else:
        assert set(card["params"]) >= {"head_lr"}
    headline = card["metrics"]["headline"]
    assert headline["low"] <= headline["value"] <= headline["high"]
    assert headline["n"] == card["metrics"]["test"]["n"]  # the test split, which nothing chose
    assert card["metrics"]["test"]["accuracy"]["low"] <= card["metrics"]["test"]["accuracy"][
        "value"] <= card["metrics"]["test"]["accuracy"]["high"]
    assert card["versions"]["tensorflow"] and card["versions"]["keras"]
    assert set(card["files"]) == {"keras", "savedmodel", "tflite", "onnx"}
    assert (out / "labels.txt").read_text() == "cat\ndog\n"  # beside every format

    files = sorted((study["data"] / "test").rglob("*.png"))[:10]
    from_study = _predicted(study, "pets", files)
    for fmt, name in card["files"].items():
        fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS, fmt, str(out / name),
                                *map(str, files)], capture_output=True, text=True, timeout=300)
        assert fresh.returncode == 0, fresh.stderr[-3000:]
        raw = np.array(json.loads(fresh.stdout.strip().splitlines()[-1]))
        by_tlsweep = _predicted(study, str(out / name), files)
        assert np.abs(raw - by_tlsweep).max() <= TOLERANCE[fmt], fmt
        assert np.abs(by_tlsweep - from_study).max() <= TOLERANCE[fmt], fmt


def test_quantised_litert_measures_its_change_on_the_test_split(study: dict[str, Path]) -> None:
    out = study["base"] / "quantised"
    for quantize in ("int8", "float16"):
        done = _cli(study, "export", "pets", "--out", str(out), "--format", "tflite",
                    "--quantize", quantize)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{quantize} against float32 on the study's 18 test images" in done.stdout
    card = json.loads((out / "card.json").read_text())
    assert set(card["files"]) == {"tflite-int8", "tflite-float16"}
    test_accuracy = card["metrics"]["test"]["accuracy"]["value"]
    for key, change in card["quantization"].items():
        assert (change["split"], change["images"]) == ("test", 18), key
        # The float32 side is the delivered model on the study's own test split: the study's
        # recorded test accuracy, recomputed from the decoded images.
        assert change["float32"]["accuracy"] == pytest.approx(test_accuracy, abs=1e-9), key
        assert change["accuracy_change"] == pytest.approx(
            change["quantized"]["accuracy"] - change["float32"]["accuracy"])
        assert 0.0 <= change["same_class"] <= 1.0
    files = sorted((study["data"] / "test").rglob("*.png"))[:6]
    for name in card["files"].values():
        fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS, "tflite", str(out / name),
                                *map(str, files)], capture_output=True, text=True, timeout=300)
        assert fresh.returncode == 0, fresh.stderr[-3000:]
        raw = np.array(json.loads(fresh.stdout.strip().splitlines()[-1]))
        assert np.abs(raw - _predicted(study, str(out / name), files)).max() <= 1e-4, name


def test_the_card_says_what_a_model_card_says(study: dict[str, Path]) -> None:
    out = study["base"] / "card"
    done = _cli(study, "export", "pets", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    card = json.loads((out / "card.json").read_text())
    counts = card["training_data"]["class_counts"]
    assert sum(counts["test"].values()) == 18 and set(counts["train"]) == {"cat", "dog"}
    assert card["training_data"]["folders"] == {
        f"{split}_dir": str(study["data"] / split) for split in ("train", "val", "test")}
    assert card["seed"] is not None and len(card["sweep_sha256"]) == 64
    assert "mobilenet_v2.weights.h5" in card["base_weights"]
    assert card["created"].startswith("20") and card["intended_use"]
    assert not any("imbalanced" in item for item in card["limitations"])  # 2:1 is not named
    assert "The test figures rest on 18 images: see their intervals." in card["limitations"]
    page = (out / "README.md").read_text()
    assert page.startswith("---\nlibrary_name: \"keras\"")
    for section in ("## Intended use", "## Evaluation", "## Training data", "## Limitations"):
        assert section in page
    assert "| cat |" in page and card["metrics"]["headline"]["source"] in page


def test_evaluate_matches_the_studys_test_columns(study: dict[str, Path]) -> None:
    out = study["base"] / "evaluation"
    done = _cli(study, "evaluate", "pets", str(study["data"] / "test"), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    chosen = pd.read_parquet(study["results"] / "pets" / "final.parquet")
    chosen = chosen[chosen["role"] == "chosen"].iloc[0]
    assert metrics["n"] == 18  # 12 cats and 6 dogs
    assert metrics["accuracy"]["value"] == pytest.approx(chosen["test_accuracy"], abs=1e-12)
    assert metrics["accuracy"]["low"] == pytest.approx(chosen["test_accuracy_low"], abs=1e-12)
    assert metrics["balanced_accuracy"]["value"] == pytest.approx(
        chosen["test_balanced_accuracy"], abs=1e-12)
    assert 0.0 <= metrics["expected_calibration_error"] <= 1.0
    assert np.asarray(metrics["confusion"]).sum() == 18
    assert {"precision", "recall", "f1", "recall_low"} <= set(metrics["per_class"][0])
    assert (out / "calibration.png").stat().st_size > 1000
    assert "balanced accuracy" in done.stdout and "confusion matrix" in done.stdout
    assert len(pd.read_parquet(out / "predictions.parquet")) == 18


def test_predict_skips_the_messy_files_with_reasons(study: dict[str, Path]) -> None:
    messy = messy_folder(study["base"] / "messy")
    done = _cli(study, "predict", "pets", str(messy), "--format", "csv")
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(pd.io.common.StringIO(done.stdout))
    names = {Path(f).name for f in frame["file"]}
    assert {"gray.jpg", "cmyk.jpg", "transparent.png", "palette.png"} <= names
    assert len(frame) == 16  # 12 class images and the four odd colour modes
    for name in ("placeholder.gif", ".DS_Store", "notes.txt", "truncated.jpg"):
        assert name not in names
        line = next(line for line in done.stderr.splitlines() if name in line)
        assert "skipped" in line and ":" in line.split(name, 1)[1]
    assert "GIF" in next(line for line in done.stderr.splitlines() if "placeholder.gif" in line)
    for pattern in ("absl", "oneDNN", "I0000", "WARNING"):
        assert pattern not in done.stderr + done.stdout


def test_model_commands_refuse_bad_input_cleanly(study: dict[str, Path]) -> None:
    cases = [
        (("predict", "nosuchstudy", str(study["data"])), "nosuchstudy"),
        (("predict", "pets", str(study["base"] / "missing.png")), "missing.png"),
        (("predict", "pets", str(study["data"]), "--format", "xml"), "--format"),
        (("export", "pets", "--out", str(study["base"] / "x"), "--format", "pt"), "--format"),
        (("export", "pets", "--out", str(study["base"] / "x"), "--trial", "999"), "trial 999"),
        (("evaluate", "pets", str(study["data"])), "train"),  # train/val/test are not classes
    ]
    for args, named in cases:
        done = _cli(study, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert named in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert not (study["base"] / "x").exists()
