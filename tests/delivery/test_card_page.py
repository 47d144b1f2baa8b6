"""The card in words (intended use, limitations), its page for people, and the export formats'
choice, without TensorFlow."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from tlsweep.delivery._card_readme import render_page
from tlsweep.delivery._card_story import intended_use, limitations
from tlsweep.delivery._formats import FORMATS, export_format
from tlsweep.delivery._modelcard import ModelCard
from tlsweep.errors import ConfigError


def card(train: dict[str, int]) -> ModelCard:
    return ModelCard(
        class_names=list(train), image_size=96, backbone="MobileNetV2",
        preprocessing="MobileNetV2", study="tiles", trial=3, made_by="refit",
        params={"head_lr": 0.01}, format="keras", seed=7, versions={"tlsweep": "0.1.0"},
        metrics={"headline": {"metric": "balanced_accuracy", "value": 0.9, "low": 0.8,
                              "high": 0.95, "n": 60, "source": "out-of-fold and test",
                              "interval": "posterior of the mean recall"}},
        training_data={"folder": "/data/tiles", "folders": {"dir": "/data/tiles"},
                       "class_counts": {"train": train, "test": dict.fromkeys(train, 4)}})


def described(made: ModelCard, confusion: list[list[int]]) -> ModelCard:
    """As ``study_source`` fills a card."""
    return replace(made, intended_use=intended_use(made.class_names, made.training_data),
                   limitations=limitations(made.class_names, made.training_data,
                                           made.image_size, confusion))


def test_limitations_come_from_the_studys_own_figures() -> None:
    made = described(card({"free": 40, "crack": 4}), [[4, 0], [2, 2]])
    assert made.intended_use.startswith("Classifying RGB images into 2 classes (free, crack)")
    assert "/data/tiles" in made.intended_use
    text = " ".join(made.limitations)
    assert "imbalanced (free: 40 training images, crack: 4; 10:1)" in text
    assert "Weak on test: crack recalled 0.50 of 4 images." in text
    assert "The test figures rest on 8 images" in text
    balanced = described(card({"free": 10, "crack": 9}), [[4, 0], [0, 4]])
    assert not any("imbalanced" in item or "Weak" in item for item in balanced.limitations)


def test_the_page_has_front_matter_and_every_section() -> None:
    page = render_page(described(card({"free": 40, "crack": 4}), [[4, 0], [2, 2]]), "tiles-model")
    front, body = page.split("---\n")[1], page.split("---\n", 2)[2]
    assert 'pipeline_tag: "image-classification"' in front
    assert '"MobileNetV2"' in front
    for section in ("## Intended use", "## Evaluation", "## Training data", "## Limitations",
                    "## How it was made", "## Use"):
        assert section in body
    assert "balanced accuracy 0.900 [0.800, 0.950] on 60 images" in body
    assert "| free | 40 | 4 |" in body and "Seed 7" in body
    assert "MobileNetV2 fine-tuned (refit of trial 3)" in body
    assert "tlsweep predict tiles-model/ images/" in body


@pytest.mark.parametrize(("fmt", "quantize", "says"), [
    ("onnx", "int8", "only the tflite format is quantised"),
    ("tflite", "int4", "unknown quantisation 'int4'; choose one of: float16, int8"),
    ("pt", None, "unknown format 'pt'; choose one of: keras, savedmodel, tflite, onnx"),
])
def test_a_format_that_cannot_be_made_is_refused(fmt: str, quantize: str | None,
                                                  says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        export_format(fmt, quantize)


def test_a_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs tf2onnx.*pip install 'tlsweep\[export\]'"):
        export_format("onnx", None)
    assert export_format("tflite", "int8") is FORMATS["tflite-int8"]
