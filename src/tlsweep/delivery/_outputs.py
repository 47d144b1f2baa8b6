"""The outputs of ``predict`` and ``evaluate`` (and the folder of ``export``), checked before any
model is loaded: a wrong ``--out`` used to cost the whole run and end in a traceback (issue
38). No TensorFlow here."""

from __future__ import annotations

from pathlib import Path

from tlsweep.errors import ConfigError
from tlsweep.system import writable_folder

EVALUATION_FILES = ("metrics.json", "per_class.parquet", "predictions.parquet",
                    "calibration.png")


def check_output_file(out: Path) -> None:
    """``predict --out FILE``: a file to write (an existing one is replaced), never a folder."""
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a folder; predict writes one file. Give a file name, "
                          f"e.g. {out / 'predictions.csv'}.")
    check_creatable(out)


def check_output_folder(out: Path) -> None:
    """``evaluate --out DIR``: a folder to write the evaluation's files into, never a file, and
    never over an earlier evaluation's files (the user's; another model's numbers mixed with
    this one's would be worse than a refusal)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file; evaluate writes {len(EVALUATION_FILES)} "
                          f"files ({', '.join(EVALUATION_FILES)}) into a folder. Give a new "
                          f"folder, e.g. {out.with_suffix('')}-evaluation.")
    earlier = [name for name in EVALUATION_FILES if (out / name).exists()]
    if earlier:
        raise ConfigError(f"--out: {out} already holds an evaluation ({', '.join(earlier)}); "
                          f"evaluate never writes over one. Give a new folder, or move those "
                          f"files away first.")
    check_creatable(out)


def check_creatable(out: Path) -> None:
    """``out``'s nearest existing parent must be a folder this process may write in."""
    writable_folder(out.parent, "--out")
