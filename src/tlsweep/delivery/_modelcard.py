"""What a trained model is, written beside it: the model card, and where a study's models are.

``export``, ``predict`` and ``evaluate`` take a study name or an exported model; this module turns
either into the model file and its card. No TensorFlow here.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tlsweep.delivery._card_story import intended_use, limitations
from tlsweep.delivery._formats import FORMAT_FILES
from tlsweep.delivery._model_files import check_model_file
from tlsweep.errors import ConfigError

CARD = "card.json"
LABELS = "labels.txt"  # the class names, one a line, in the model's output order
PAGE = "README.md"  # the card for people (``_card_page``)
OWN_FILES = (CARD, LABELS, PAGE)  # written by every export beside its model files
# Inside the exported model: PIL's bilinear resize rebuilt in-graph (``_resize``), then the
# backbone's own preprocessing as one fixed per-pixel affine map. The same in every format:
# TFLite once lacked the antialiased resize, and a raw 2x image's class probabilities moved from
# 0.733 to 0.485 (issue 38). Being training's own resize, it costs no accuracy.
RESIZE = ("PIL's bilinear (antialiased) resize to image_size, computed inside the model, in "
          "every format: the resize tlsweep's training, predict and evaluate use, so a raw "
          "image of any size gets the probabilities tlsweep predict gives it")
_METRICS = ("accuracy", "balanced_accuracy")


@dataclass
class ModelCard:
    """The JSON beside an exported model (``card.json``)."""

    class_names: list[str]
    image_size: int
    backbone: str
    preprocessing: str  # a registered backbone's name or unit/symmetric/none
    study: str
    trial: int | None  # None: the linear probe (made_by "probe"), no trial's recipe
    made_by: str  # refit, best_fold, ensemble, kept, probe: how the model was trained
    params: dict[str, Any]
    # headline (measures.Headline), probe_on_the_same_images, validation, cross_validated,
    # test -> value, low, high, n, method
    metrics: dict[str, Any]
    versions: dict[str, str | None] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=lambda: {
        "dtype": "uint8", "shape": [None, None, None, 3], "channels": "RGB", "resize": RESIZE})
    format: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # format -> file name beside the card
    # The sha256 of the trained model file the export was made from: two exports into one
    # folder are of one model only when these match (a re-run study reuses trial numbers).
    made_from: str | None = None
    # What a Hugging Face or Keras model card says besides (issue 39); empty in older cards.
    created: str | None = None  # when the card was made (UTC, ISO 8601)
    seed: int | None = None  # the sweep's seed
    sweep_sha256: str | None = None  # of the sweep file the study ran
    base_weights: str | None = None  # where the backbone's pretrained weights came from
    training_data: dict[str, Any] = field(default_factory=dict)  # folder, counts per split
    intended_use: str | None = None
    limitations: list[str] = field(default_factory=list)
    # A quantised format -> its change in accuracy on the study's test split (``_quantized``).
    quantization: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """What the model is, in words: ``trial N`` or ``linear probe``."""
        return "linear probe" if self.trial is None else f"trial {self.trial}"

    def write(self, folder: Path) -> Path:
        from tlsweep.system import write_text

        path = folder / CARD
        write_text(path, json.dumps(asdict(self), indent=2, default=_plain) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        data, problem = read_card_data(path)
        if problem is not None:
            raise ConfigError(f"{path}: not a tlsweep model card: {problem}. Export the model "
                              f"again with `tlsweep export STUDY --out DIR`.")
        known = {f.name for f in fields(cls)}  # a newer tlsweep's extra keys are left out
        return cls(**{key: value for key, value in data.items() if key in known})


def read_card_data(path: Path) -> tuple[Any, str | None]:
    """(card.json's data, what makes it no tlsweep card, in words, or None)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"it cannot be read as JSON ({exc})"
    return data, card_problem(data)


def card_problem(data: Any) -> str | None:
    """What makes ``data`` (parsed card.json) unusable, in words; None when it is usable.
    Only what predict, evaluate and export rely on is checked, each key by name."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    required = [f.name for f in fields(ModelCard)
                if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    names = data["class_names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return "key 'class_names' must be a non-empty list of class names"
    if len(set(names)) != len(names):
        return "key 'class_names' names a class twice"
    size = data["image_size"]
    if not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        return "key 'image_size' must be a positive whole number of pixels"
    return _files_problem(data.get("files", {}))


def _files_problem(files: Any) -> str | None:
    # Names, not paths: a card may only point at files beside it, never elsewhere on disk.
    if not isinstance(files, dict) or not all(
            fmt in FORMAT_FILES and isinstance(name, str) and name and Path(name).name == name
            and name not in (".", "..") for fmt, name in files.items()):
        return (f"key 'files' must map formats ({', '.join(FORMAT_FILES)}) to file names "
                f"beside the card")
    return None


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


@dataclass(frozen=True)
class ModelSource:
    """A model to apply: its file, its format and its card."""

    path: Path
    format: str  # a key of FORMAT_FILES
    card: ModelCard
    card_path: Path | None = None  # an export's card.json; None: a study's model, no card file
    study_dir: Path | None = None  # a study's model: its results folder

    @property
    def remedy(self) -> str:
        """What to do when the model file is damaged."""
        if self.card_path is not None:
            return (f"Export it again: `tlsweep export {self.card.study} --out "
                    f"{self.card_path.parent} --replace`.")
        return (f"Restore the study's file, or export one of its kept trials instead: "
                f"`tlsweep export {self.card.study} --trial N --out DIR`.")

    @property
    def classes_from(self) -> str:
        """Where the class list comes from, for messages: the card, or the study."""
        if self.card_path is not None:
            return str(self.card_path)
        return f"study {self.card.study!r}"


# ----------------------------------------------------------------------------- from a study
def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def _scores(row: pd.Series, prefix: str, n: int | None, method: str | None) -> dict[str, Any]:
    found = {}
    for metric in _METRICS:
        name = f"{prefix}_{metric}" if prefix else metric
        value = _number(row.get(name))
        if value is not None:
            found[metric] = {"value": value, "low": _number(row.get(f"{name}_low")),
                             "high": _number(row.get(f"{name}_high"))}
    return {**found, "n": n, "method": method} if found else {}


def _metrics(row: pd.Series, meta: dict[str, Any], objective: str,
             delivered: bool) -> dict[str, Any]:
    """The model's scores; for the study's delivered model, first its ``headline`` (one
    estimate, with what it was measured on) and the probe's on the same images."""
    from tlsweep.measures import BRODERSEN, WILSON

    method = f"accuracy: {WILSON}; balanced accuracy: {BRODERSEN}"
    headline = {"headline": meta["headline"],
                "probe_on_the_same_images": meta.get("baseline_headline")} \
        if delivered and meta.get("headline") else {}
    metrics = {"objective": objective, **headline,
               "validation": _scores(row, "val", meta.get("n_val"), method),
               "test": _scores(row, "test", meta.get("n_test") or None, method)}
    if not metrics["validation"] and _number(row.get("cv_value")) is not None:
        metrics["validation"] = {"note": "a model refit on train+val has no validation images "
                                         "left to score it: see cross_validated"}
    cv = _number(row.get("cv_value"))
    if cv is not None:
        metrics["cross_validated"] = {objective: {"value": cv, "low": _number(row.get("cv_low")),
                                                  "high": _number(row.get("cv_high"))},
                                      "method": meta.get("final_method")}
    return metrics


def _trial_row(view: Any, trial: int | None) -> tuple[pd.Series, str]:
    """The leaderboard row that describes the model, and how the model was made."""
    chosen = view.reference("chosen")
    if trial is None:
        if chosen.empty:
            raise ConfigError(f"study {view.name!r} has no chosen model yet (its finalists' "
                              f"stage has not run). Finish it with `tlsweep resume "
                              f"{view.name}`, or pick a trial with --trial N.")
        row = chosen.iloc[0]
        from tlsweep.finalists import recorded_report

        report = recorded_report(view.attrs)
        return row, report.delivered.kind if report else "refit"
    rows = view.leaderboard[view.leaderboard["trial"] == trial]
    if rows.empty:
        raise ConfigError(f"study {view.name!r} has no trial {trial}; see `tlsweep leaderboard "
                          f"{view.name}`.")
    return rows.iloc[0], "kept"


def delivered_file(view: Any) -> Path | None:
    """The delivered model, in the study's own folder. The stage always writes it to
    FINAL_DIR there; the recorded path is read for its name only, since before issue 38 it was
    relative to the folder the run started in, and a moved results folder moves the file."""
    from tlsweep.finalists import DELIVERED, FINAL_DIR, recorded_report

    report = recorded_report(view.attrs)
    stored = report.delivered.path if report else None
    if not stored:
        return None
    return view.directory / FINAL_DIR / (Path(stored).name or DELIVERED)


def _model_file(view: Any, sweep: Any, trial: int | None) -> Path:
    from tlsweep.store import checkpoint_folder, lineage_root
    from tlsweep.training import FINAL_MODEL

    if trial is None:
        path = delivered_file(view) or Path("")
    else:
        path = (checkpoint_folder(sweep.config, view.directory)
                / str(lineage_root(view.trial(trial))) / FINAL_MODEL)
    if not path.is_file():
        which = "the chosen model" if trial is None else f"trial {trial}'s model"
        raise ConfigError(f"study {view.name!r}: {which} is not on disk ({path}). Only the "
                          f"best execution.keep_top trials keep a model; export the chosen one "
                          f"(no --trial) or one of the kept trials.")
    return path


def _base_weights(choice: Any) -> str | None:
    if choice is None:
        return None
    if choice.model is not None:
        return f"custom backbone {choice.model}"
    return {"imagenet": "ImageNet (Keras Applications)",
            "none": "none: trained from scratch"}.get(choice.weights, choice.weights)


def _training_data(sweep: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    names = list(attrs.get("class_names") or [])
    counts = attrs.get("class_counts") or {}
    data = sweep.config.data
    folders = {"dir": data.dir, "train_dir": data.train_dir, "val_dir": data.val_dir,
               "test_dir": data.test_dir}  # as the sweep file gave them
    return {"folder": str(data.dir or data.train_dir),
            "folders": {key: str(path) for key, path in folders.items() if path is not None},
            "class_counts": {split: dict(zip(names, per_class, strict=False))
                             for split, per_class in counts.items()}}


def _test_confusion(view: Any) -> list[list[int]] | None:
    from tlsweep.finalists import recorded_report

    report = recorded_report(view.attrs)
    return report.delivered.test_confusion if report else None


def study_source(directory: Path, name: str, trial: int | None = None) -> ModelSource:
    """The chosen model of a study (or one trial's kept model) and its card."""
    from tlsweep.inspection import StudyView
    from tlsweep.store import file_metadata, recorded_sweep

    view = StudyView.load(directory, name)
    sweep = recorded_sweep(view.study)
    row, made = _trial_row(view, trial)
    path = _model_file(view, sweep, trial)
    backbone = str(row["backbone"])
    choice = sweep.space.backbone_choices().get(backbone)
    preprocessing = (choice.preprocessing if choice and choice.preprocessing else backbone)
    number = None if pd.isna(row["trial"]) else int(row["trial"])
    params = {} if number is None else dict(view.trial(number).user_attrs.get("params") or {})
    metadata = file_metadata(view.study)
    card = ModelCard(
        class_names=list(view.attrs.get("class_names") or []),
        image_size=int(sweep.config.data.image_size), backbone=backbone,
        preprocessing=preprocessing, study=name, trial=number, made_by=made,
        params=params, metrics=_metrics(row, view.meta, view.objective, trial is None),
        versions=metadata["versions"], format="keras",
        created=datetime.now(UTC).isoformat(timespec="seconds"), seed=sweep.config.seed,
        sweep_sha256=metadata["sweep_sha256"], base_weights=_base_weights(choice),
        training_data=_training_data(sweep, view.attrs))
    confusion = _test_confusion(view) if trial is None else None
    card = replace(card, intended_use=intended_use(card.class_names, card.training_data),
                   limitations=limitations(card.class_names, card.training_data,
                                           card.image_size, confusion))
    source = ModelSource(path, "keras", card, study_dir=directory)
    check_model_file(path, "keras", source.remedy)
    return source


# ----------------------------------------------------------------------------- from an export
def _exported(card_path: Path, wanted: Path | None) -> ModelSource:
    card = ModelCard.read(card_path)
    folder = card_path.parent
    for fmt, relative in card.files.items():
        path = folder / relative
        if (wanted is None or path.resolve() == wanted.resolve()) and path.exists():
            source = ModelSource(path, fmt, card, card_path)
            check_model_file(path, fmt, source.remedy)
            return source
    raise ConfigError(f"{card_path}: the card names no model file that exists here "
                      f"({', '.join(card.files.values()) or 'none'}). Export again.")


def resolve_source(target: str, results_root: Path) -> ModelSource:
    """MODEL_OR_STUDY: an export folder, a model file inside one, or a study name."""
    path = Path(target)
    if path.is_dir() and (path / CARD).is_file():
        return _exported(path / CARD, None)
    if path.exists() and (path.parent / CARD).is_file():
        return _exported(path.parent / CARD, path)
    if (results_root / target).is_dir() and "/" not in target:
        return study_source(results_root / target, target)
    raise ConfigError(f"{target}: neither a study in {results_root} nor an exported model (a "
                      f"folder with {CARD}). Give a study name (`tlsweep leaderboard` lists "
                      f"nothing for a missing one) or `tlsweep export STUDY --out DIR` first.")


def check_class_count(source: ModelSource, outputs: int) -> None:
    """The card's class list must match the model's outputs: else every prediction would be
    labelled with another class's name (issue 38)."""
    names = source.card.class_names
    if outputs != len(names):
        raise ConfigError(f"{source.classes_from}: lists {len(names)} classes "
                          f"({', '.join(names[:5])}{', ...' if names[5:] else ''}) but the model "
                          f"{source.path} has {outputs} outputs: the card and the model do not "
                          f"belong together. {source.remedy}")
