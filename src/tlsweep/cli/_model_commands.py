"""The commands that use a trained model: ``export``, ``predict`` and ``evaluate``. Their work
is in ``_model_output``, imported when one runs: it loads the delivery code (pandas, pyarrow),
which no other command should pay for at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tlsweep.cli._shared import ModelArg, ResultsDir, console, errors, results_root


def export(
    study: Annotated[str, typer.Argument(help="Study name (a folder under the results dir).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and its card.")],
    trial: Annotated[int | None, typer.Option(
        help="Export this trial's kept model instead of the study's chosen one.")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="keras, savedmodel, tflite (LiteRT) or onnx.")] = "keras",
    quantize: Annotated[str | None, typer.Option(
        help="tflite only: float16 or int8 (int8 weights, float activations); the change in "
             "accuracy on the study's test split is printed and written to the card.")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace --out whole when it holds another model's export.")] = False,
    results_dir: ResultsDir = None,
) -> None:
    """Write a self-contained model (raw uint8 images in, probabilities out), its card.json,
    labels.txt and a README.md model card."""
    from tlsweep.cli._model_output import export_command

    export_command(console, results_root(results_dir), study, trial, out, fmt, replace,
                   quantize)


def predict(
    model: ModelArg,
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (recursive).")],
    top: Annotated[int | None, typer.Option(
        min=1, help="Classes per image (default 3, or all when fewer).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or parquet.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """The top classes of each image, with their probabilities."""
    from tlsweep.cli._model_output import predict_command

    predict_command(console, errors, results_root(results_dir), model, paths, top, fmt, out)


def evaluate(
    model: ModelArg,
    folder: Annotated[Path, typer.Argument(help="Labelled images: one sub-folder per class.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write metrics.json, Parquet files and calibration.png here.")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """Accuracy, balanced accuracy, per-class scores, calibration, with intervals."""
    from tlsweep.cli._model_output import evaluate_command

    evaluate_command(console, errors, results_root(results_dir), model, folder, out)


