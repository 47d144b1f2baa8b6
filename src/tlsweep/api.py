"""The Python API: run a sweep, read a study and use its model from a notebook, without the shell.

Each function does what its command does, through the same code: `run` is `tlsweep run`, a
`Study`'s `export` is `tlsweep export`, a `Model`'s `predict` decodes files as `tlsweep predict`
does. Errors are the package's own (`tlsweep.errors.TlsweepError` and its subclasses), each with
the message the command would print; nothing here exits the interpreter.

`import tlsweep` stays light: every function imports what it needs when it is called. `load`
and what a `Study` reads never import TensorFlow; `load_model` and `Study.export` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsweep.errors import ConfigError, DataError, SweepAborted

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import optuna
    import pandas as pd

    from tlsweep.datasets import Skipped
    from tlsweep.delivery import ModelSource
    from tlsweep.finalists import FinalReport
    from tlsweep.measures import Headline

PathLike = str | Path


def _root(results_dir: PathLike | None) -> Path:
    """The one given, else the default of the commands' ``--results-dir``."""
    from tlsweep.store import results_root

    return Path(results_dir) if results_dir is not None else results_root()


# ----------------------------------------------------------------------------- a study
@dataclass(frozen=True)
class Study:
    """A study in its results folder. Every method reads the folder (or the study's storage)
    when called, so a study still running shows its latest state.

    Attributes:
        name: The study's name (the sweep file's ``study``).
        directory: Its results folder: the leaderboard, the storage, the delivered model.
    """

    name: str
    directory: Path

    def leaderboard(self, references: bool = False) -> pd.DataFrame:
        """The leaderboard, as ``leaderboard.parquet`` holds it: one row per trial, best first.

        Args:
            references: Also the reference rows of the finalists' stage (``role`` ``chosen``
                and ``baseline``), after the trials'.
        """
        import pandas as pd

        from tlsweep.inspection import StudyView

        view = StudyView.load(self.directory, self.name)
        if not references or view.references.empty:
            return view.leaderboard.reset_index(drop=True)
        return pd.concat([view.leaderboard, view.references], ignore_index=True)

    def optuna_study(self) -> optuna.Study:
        """The Optuna study itself, from the storage in the results folder
        (or ``$TLSWEEP_STORAGE``)."""
        from tlsweep.store import load_study

        return load_study(self.directory, self.name)

    def report(self) -> FinalReport | None:
        """What the finalists' stage found (``tlsweep.finalists.FinalReport``): finalists,
        baselines, the choice and the delivered model; None before the stage has run."""
        from tlsweep.finalists import study_report

        return study_report(self.optuna_study())

    @property
    def headline(self) -> Headline | None:
        """The delivered model's one estimate (``tlsweep.measures.Headline``: value, 95%
        interval, images); None before the finalists' stage has run."""
        report = self.report()
        return report.delivered.headline if report else None

    def export(self, out: PathLike, fmt: str = "keras", *, trial: int | None = None,
               replace: bool = False, quantize: str | None = None) -> Path:
        """Export the chosen model (or ``trial``'s kept one), as ``tlsweep export`` does: a model
        that takes raw uint8 images of any size, with its ``card.json``, in the folder ``out``.

        Args:
            out: The export folder.
            fmt: ``keras``, ``savedmodel``, ``tflite`` (LiteRT) or ``onnx``.
            trial: A kept trial's model instead of the chosen one.
            replace: Replace another model's export in ``out``.
            quantize: ``float16`` or ``int8``, for ``tflite``; the change in accuracy on the
                study's test split is written to the card.

        Returns the exported model's path.
        """
        from tlsweep.delivery import export, plan_export, study_source

        # Everything, the folder included, is checked before export() imports TensorFlow.
        plan = plan_export(study_source(self.directory, self.name, trial), Path(out), fmt,
                           replace, quantize)
        return export(plan)[0]


def load(study_name: str, *, results_dir: PathLike | None = None) -> Study:
    """A study in the results folder, to read; TensorFlow is not imported.

    Args:
        study_name: The study's name (a folder under the results folder).
        results_dir: Where studies live (default: ``$TLSWEEP_RESULTS`` or ``./results``).

    Raises:
        ConfigError: No such study there.
    """
    from tlsweep.store import study_dir

    root = _root(results_dir)
    directory = study_dir(study_name, root)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no study {study_name!r}. Check the name or "
                          f"results_dir.")
    return Study(study_name, directory)


def run(sweep_file: PathLike, *, results_dir: PathLike | None = None, trials: int | None = None,
        timeout: str | int | None = None) -> Study:
    """Create a study from a sweep file and run it to its budget, as ``tlsweep run`` does: the
    search, then the finalists' stage, printing its progress.

    Args:
        sweep_file: The sweep file (YAML).
        results_dir: Where studies live (default: ``$TLSWEEP_RESULTS`` or ``./results``).
        trials: Override ``budget.trials``.
        timeout: Override ``budget.timeout``: ``"2h"``, ``"90m"`` or seconds.

    Raises:
        ConfigError: The sweep file is invalid.
        StudyExists: The study exists already; continue it with ``tlsweep resume``.
        SweepAborted: The run was interrupted (the study is saved) or no trial completed.
    """
    from rich.console import Console

    from tlsweep.config import load_sweep
    from tlsweep.launch import Launcher
    from tlsweep.store import study_dir
    from tlsweep.sweep import INTERRUPTED

    root, path = _root(results_dir), Path(sweep_file)
    name = load_sweep(path).config.study
    try:
        launcher = Launcher(Console(), Console(stderr=True), root)
        code = launcher.run(path, trials, None if timeout is None else str(timeout), None, 1,
                            None)
    except SystemExit as exc:  # Ctrl-C while decoding: the launcher ends as the command does
        if exc.code != INTERRUPTED:
            raise
        code = INTERRUPTED
    if code == INTERRUPTED:
        raise SweepAborted(f"study {name!r}: interrupted. The study is saved; continue it with "
                           f"`tlsweep resume {name} --results-dir {root}`.")
    if code != 0:
        raise SweepAborted(f"study {name!r}: no trial completed; see tlsweep.load({name!r})"
                           f".leaderboard() for each trial's state and error.")
    return Study(name, study_dir(name, root))


# ----------------------------------------------------------------------------- a model
@dataclass(frozen=True)
class Predictions:
    """Class probabilities of some images, one row per image.

    Attributes:
        probabilities: ``(images, classes)``; row ``i`` is image ``i``'s, summing to 1.
        class_names: The classes, in the columns' order.
        files: The files predicted, in the rows' order (empty for an array of images).
        skipped: The files that could not be decoded, each with its reason.
    """

    probabilities: np.ndarray
    class_names: list[str]
    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def labels(self) -> list[str]:
        """The most probable class of each image."""
        return [self.class_names[i] for i in self.probabilities.argmax(axis=1)]

    def frame(self) -> pd.DataFrame:
        """The probabilities as a table: a column per class, a row per file (or image)."""
        import pandas as pd

        index = [str(f) for f in self.files] if self.files else None
        return pd.DataFrame(self.probabilities, columns=self.class_names, index=index)


@dataclass(frozen=True)
class Model:
    """A trained model with its card: a study's chosen model, or an exported one.

    Attributes:
        source: Its file, format and card (``tlsweep.delivery.ModelSource``).
        forward: uint8 images ``(n, height, width, 3)`` -> probabilities ``(n, classes)``.
    """

    source: ModelSource
    forward: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    @property
    def class_names(self) -> list[str]:
        """The classes, in the order of the model's outputs (from its card)."""
        return list(self.source.card.class_names)

    def predict(self, images: PathLike | Sequence[PathLike] | np.ndarray) -> Predictions:
        """Class probabilities of ``images``.

        Args:
            images: Image files or folders of them (or one path), decoded as the training
                images were (EXIF orientation, transparency over white, PIL's bilinear
                resize), undecodable ones skipped with their reason; or a uint8 array
                ``(n, height, width, 3)`` of RGB images of any size, resized inside the model
                by the same resize.
        """
        import numpy as np

        if isinstance(images, np.ndarray):
            return Predictions(self._batched(_checked(images)), self.class_names)
        from tlsweep.delivery import decode_batches, image_files

        one = isinstance(images, str | Path)  # a lone path, not a sequence of its characters
        files = image_files([Path(p) for p in ([images] if one else images)])
        kept: list[Path] = []
        chunks, skipped = [self._batched([])], []
        for decoded in decode_batches(files, self.source.card.image_size):
            kept += decoded.paths
            skipped += decoded.skipped
            chunks.append(self._batched(decoded.images))
        return Predictions(np.concatenate(chunks), self.class_names, kept, skipped)

    def _batched(self, images: Any) -> np.ndarray:
        """The model over ``images`` in tlsweep predict's batches, so memory stays flat."""
        import numpy as np

        from tlsweep.delivery import BATCH

        if len(images) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate([self.forward(images[i:i + BATCH])
                               for i in range(0, len(images), BATCH)])


def _checked(images: np.ndarray) -> np.ndarray:
    if images.dtype != "uint8" or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"images: expected a uint8 array of RGB images (n, height, width, 3), "
                        f"got {images.dtype} {images.shape}. Convert with "
                        f"np.asarray(images, np.uint8).")
    return images


def load_model(path_or_study: PathLike | Study, *,
               results_dir: PathLike | None = None) -> Model:
    """A model to predict with: a `Study` (its chosen model), a study's name, or an exported
    model (its folder or file). TensorFlow is imported here.

    Args:
        path_or_study: What to load, as ``tlsweep predict``'s ``MODEL_OR_STUDY``.
        results_dir: Where a named study lives (default: ``$TLSWEEP_RESULTS`` or ``./results``).

    Raises:
        ConfigError: Nothing to load there, or a damaged model or card.
    """
    from tlsweep.delivery import load_model as probabilities
    from tlsweep.delivery import resolve_source, study_source

    if isinstance(path_or_study, Study):
        source = study_source(path_or_study.directory, path_or_study.name)
    else:
        source = resolve_source(str(path_or_study), _root(results_dir))
    return Model(source, probabilities(source))
