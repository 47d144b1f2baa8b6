"""What the commands that use a trained model (``export``, ``predict``, ``evaluate``) do and
print. TensorFlow is imported only once a model is loaded, after every argument was checked."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tlsweep.delivery import ModelSource, resolve_source, study_source
from tlsweep.errors import ConfigError
from tlsweep.measures import headline_text

PROGRESS_FROM = 200  # files: fewer finish before a bar would be worth drawing


def _metric_text(scores: dict, name: str) -> str:
    found = scores.get(name) or {}
    if not found:
        return "-"
    low, high = found.get("low"), found.get("high")
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{found['value']:.3f}{interval}"


def export_command(console: Console, root: Path, study: str, trial: int | None, out: Path,
                   fmt: str, replace: bool = False, quantize: str | None = None) -> None:
    from tlsweep.delivery import export, export_format, plan_export

    export_format(fmt, quantize)  # a wrong format or a missing package: said before all else
    if not (root / study).is_dir():
        raise ConfigError(f"{root / study}: no study {study!r}. Check the name or "
                          f"--results-dir.")
    # Everything, the folder included, is checked before TensorFlow is imported.
    plan = plan_export(study_source(root / study, study, trial), out, fmt, replace, quantize)
    source = plan.source
    with _quiet(None, _log_for(source, root), "export"):
        target, check = export(plan)
    card = source.card
    console.print(f"exported {study} {card.source} ({card.made_by}) as {plan.fmt.key}: {target}")
    console.print(f"  input: raw RGB uint8 images of any size; resized to {card.image_size} px "
                  f"and preprocessed for {card.backbone} inside the model")
    console.print(f"  classes: {', '.join(card.class_names)}")
    headline = headline_text(card.metrics.get("headline"),
                             card.metrics.get("probe_on_the_same_images"))
    test = card.metrics.get("test") or {}
    if headline:
        console.print(f"  {headline}", markup=False)
    elif test:
        console.print(f"  test ({test.get('n')} held-out images): accuracy "
                      f"{_metric_text(test, 'accuracy')}, balanced "
                      f"{_metric_text(test, 'balanced_accuracy')}")
    if "max_abs_difference" in check:
        console.print(f"  checked against the Keras model on {check['images']} images: max "
                      f"|difference| {check['max_abs_difference']:.2g} (tolerance "
                      f"{check['tolerance']})")
    if "accuracy_change" in check:
        console.print(f"  {check['quantization']} against float32 on the study's "
                      f"{check['images']} {check['split']} images: accuracy "
                      f"{check['float32']['accuracy']:.3f} -> {check['quantized']['accuracy']:.3f}"
                      f" ({100 * check['accuracy_change']:+.1f} points), balanced "
                      f"{check['float32']['balanced_accuracy']:.3f} -> "
                      f"{check['quantized']['balanced_accuracy']:.3f} "
                      f"({100 * check['balanced_accuracy_change']:+.1f}); same class on "
                      f"{100 * check['same_class']:.1f}% of them")
    console.print(f"  card: {out / 'card.json'} (for people: {out / 'README.md'}); labels: "
                  f"{out / 'labels.txt'}")


@contextmanager
def _quiet(errors: Console | None, log: Path, role: str) -> Iterator[None]:
    """TensorFlow's lines (fd 2) go to ``log`` while the block runs; the user's own lines
    (``errors``: skipped files, progress) still reach the terminal, through a copy of fd 2."""
    from tlsweep.system import stderr_to_log

    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    previous = errors.file if errors is not None else None
    if errors is not None:
        errors.file = terminal
    try:
        with stderr_to_log(log, role):
            yield
    finally:
        if errors is not None:
            errors.file = previous
        terminal.close()


def _log_for(source: ModelSource, root: Path) -> Path:
    """The study's log when the model is a study's, else one in the cache (an exported model's
    folder may be read-only, and holds only the model)."""
    from tlsweep.datasets import cache_root
    from tlsweep.system import log_path

    study = root / source.card.study
    return log_path(study if study.is_dir() else cache_root() / "logs")


def _with_progress(console: Console, total: int, work: Callable) -> object:
    if total < PROGRESS_FROM or not console.is_terminal:
        return work(None)
    columns = (TextColumn("images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("images", total=total)
        return work(lambda done: bar.advance(task, done))


DEFAULT_TOP = 3


def predict_command(console: Console, errors: Console, root: Path, target: str,
                    paths: list[Path], top: int | None, fmt: str, out: Path | None) -> None:
    from tlsweep.delivery import check_output, image_files, predict_files, write_frame

    check_output(fmt, out)  # before the model: a wrong --out used to cost the whole run
    source = resolve_source(target, root)
    files = image_files(paths)
    top = _clamped_top(errors, top, len(source.card.class_names))
    with _quiet(errors, _log_for(source, root), "predict"):
        result = _with_progress(errors, len(files), lambda progress: predict_files(
            source, files, progress))
    for skipped in result.skipped:
        errors.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    frame = result.top(top)
    if fmt == "table":
        table = Table(title=f"{len(frame)} images, top {min(top, len(result.class_names))}",
                      header_style="bold", box=box.SIMPLE_HEAD)
        for column in frame.columns:
            table.add_column(column, justify="right" if column.startswith("p_") else "left")
        for row in frame.itertuples(index=False):
            table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)
        return
    text = write_frame(frame, fmt, out)
    if text is not None:
        console.out(text, end="", highlight=False)
    else:
        console.print(f"{len(frame)} predictions written to {out}")


def _clamped_top(errors: Console, top: int | None, classes: int) -> int:
    """--top at most the model's classes; a --top asked for above that is said so."""
    if top is None:
        return min(DEFAULT_TOP, classes)
    if top > classes:
        errors.print(f"--top {top}: the model has {classes} classes; all {classes} are shown.",
                     highlight=False)
    return min(top, classes)


def evaluate_command(console: Console, errors: Console, root: Path, target: str, folder: Path,
                     out: Path | None) -> None:
    from tlsweep.delivery import check_output_folder, evaluate, labelled_files, write_outputs

    if out is not None:
        check_output_folder(out)  # before the model: a wrong --out used to cost the whole run
    source = resolve_source(target, root)
    files, labels = labelled_files(folder, source.card.class_names)
    with _quiet(errors, _log_for(source, root), "evaluate"):
        result = _with_progress(errors, len(files), lambda progress: evaluate(
            source, folder, files, labels, progress))
    for skipped in result.predictions.skipped:
        errors.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    _print_evaluation(console, result, source, folder)
    if out is not None:
        for path in write_outputs(result, source, out):
            console.print(f"wrote {path}")


def _print_evaluation(console: Console, result: object, source: ModelSource,
                      folder: Path) -> None:
    from tlsweep.delivery import CALIBRATION_BINS
    from tlsweep.inspection import ClassMetrics, confusion_table

    scores = result.scores()
    card = source.card
    console.print(f"[bold]{card.study} · {card.source}[/] ({source.format}) on {folder}: "
                  f"{len(result.labels)} images")
    console.print(f"  accuracy           {scores['accuracy'].text()}  "
                  f"({scores['accuracy'].method})")
    console.print(f"  balanced accuracy  {scores['balanced_accuracy'].text()}  "
                  f"({scores['balanced_accuracy'].method})")
    console.print(_per_class_table(result.per_class()))
    console.print(confusion_table(ClassMetrics(result.class_names, result.confusion())))
    ece, bins = result.calibration()
    console.print(f"  expected calibration error {ece:.3f} ({len(bins)} occupied bins of "
                  f"{CALIBRATION_BINS})")
    wrong = result.confidently_wrong()
    if not wrong.empty:
        console.print("  most confidently wrong, for review:")
        for row in wrong.to_dict("records"):
            console.print(f"    {row['confidence']:.3f}  {row['true']} -> {row['predicted']}  "
                          f"{row['file']}", highlight=False)


def _per_class_table(frame: object) -> Table:
    table = Table(title="per class (95% CI: Wilson)", header_style="bold", box=box.SIMPLE_HEAD)
    for column in ("class", "precision", "95% CI", "recall", "95% CI ", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in frame.to_dict("records"):
        table.add_row(row["class"], f"{row['precision']:.3f}",
                      f"{row['precision_low']:.3f}-{row['precision_high']:.3f}",
                      f"{row['recall']:.3f}", f"{row['recall_low']:.3f}-{row['recall_high']:.3f}",
                      f"{row['f1']:.3f}", str(row["support"]))
    return table
