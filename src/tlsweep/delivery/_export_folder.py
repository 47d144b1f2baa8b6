"""Where ``export`` writes, decided before any model is loaded, and how it writes there.

The rule (issue 38: exporting trial A, then trial B into one folder left A's model.keras under
a card that said B, so ``predict DIR`` ran one model under the other's name):

- ``--out`` absent or empty: the export is built in a temporary sibling folder, renamed into place.
- ``--out`` holds an export of the same model (its card names the same study, trial, way of
  making and model fingerprint): the new format is added beside the others, and the card lists
  them all. Writing a format again replaces that format's file whole.
- ``--out`` holds an export of another model: refused, unless ``--replace``; then the new export
  is built in a temporary sibling folder and swapped in whole (the old folder is renamed aside,
  and deleted only once the new one is in place), never mixed with the old one's files.
- ``--out`` holds anything else (no card.json, a card.json that is not tlsweep's, or files its
  card does not name): refused, even with ``--replace``: export never deletes or overwrites a
  file it did not write.

No TensorFlow here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from tlsweep.delivery._modelcard import CARD, OWN_FILES, ModelCard, read_card_data
from tlsweep.delivery._outputs import check_creatable
from tlsweep.errors import ConfigError
from tlsweep.system import folder_beside

NEW_FOLDER = "Give a new or empty folder as --out"


class Action(Enum):
    CREATE = "create"  # absent or empty: the export becomes the folder
    ADD = "add"  # the same model's export: one more format beside the others
    REPLACE = "replace"  # another model's export, replaced whole (--replace)


@dataclass(frozen=True)
class ExportFolder:
    out: Path
    action: Action
    kept_files: dict[str, str]  # format -> file: this model's other formats already there


def plan_folder(out: Path, card: ModelCard, fmt: str, replace: bool) -> ExportFolder:
    """What exporting ``card``'s model as ``fmt`` into ``out`` will do; refused (ConfigError)
    when it would overwrite or mix anything."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file; give a folder for the model and its card.")
    check_creatable(out)
    if not out.exists() or not any(out.iterdir()):
        return ExportFolder(out, Action.CREATE, {})
    previous = _previous_export(out)
    if _same_model(previous, card):
        kept = {f: name for f, name in previous.files.items() if f != fmt and (out / name).exists()}
        return ExportFolder(out, Action.ADD, kept)
    if not replace:
        raise ConfigError(
            f"--out: {out} holds the export of another model ({_difference(previous, card)}). "
            f"One folder holds one model: give another --out, or add --replace to replace "
            f"that export whole.")
    return ExportFolder(out, Action.REPLACE, {})


def _difference(previous: ModelCard, card: ModelCard) -> str:
    there = f"study {previous.study!r}, {previous.source}, {previous.made_by}"
    here = f"study {card.study!r}, {card.source}, {card.made_by}"
    if there != here:
        return f"{there}; this is {here}"
    if previous.made_from is None:
        return f"{there}, exported before tlsweep recorded which model file an export is of"
    return f"{there}, but from another model file: the study was run again since"


def _previous_export(out: Path) -> ModelCard:
    """The card of the tlsweep export in ``out``; refused when ``out`` holds anything else."""
    if not (out / CARD).is_file():
        raise ConfigError(f"--out: {out} holds files but no {CARD}: it is not a tlsweep export, "
                          f"and export never writes among other files. {NEW_FOLDER}.")
    problem = read_card_data(out / CARD)[1]
    if problem is not None:
        raise ConfigError(f"--out: {out} holds a {CARD} that is not a tlsweep model card "
                          f"({problem}): it is not a tlsweep export. {NEW_FOLDER}.")
    previous = ModelCard.read(out / CARD)
    named = {*OWN_FILES, *previous.files.values()}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in named)
    if foreign:
        raise ConfigError(f"--out: {out} holds files its {CARD} does not name "
                          f"({', '.join(foreign[:3])}{', ...' if foreign[3:] else ''}), which "
                          f"export never overwrites or deletes. {NEW_FOLDER}, or move them out.")
    return previous


def _same_model(previous: ModelCard, card: ModelCard) -> bool:
    # A card without a fingerprint (before issue 38) cannot prove it: another model, then.
    return (previous.made_from is not None and previous.made_from == card.made_from
            and (previous.study, previous.trial, previous.made_by)
            == (card.study, card.trial, card.made_by))


@contextmanager
def staged(folder: ExportFolder) -> Iterator[Path]:
    """A temporary folder beside ``folder.out`` to build the export in; once the block ends
    without error, it is moved in by ``folder.action``; else it is removed with every folder
    made for it, and ``out`` is as it was."""
    made = _make_parents(folder.out)
    staging = folder_beside(folder.out.parent, f".{folder.out.name}.export-")
    try:
        yield staging
        _commit(folder, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(made)
        raise
    shutil.rmtree(staging, ignore_errors=True)  # ADD leaves the replaced files there


def _commit(folder: ExportFolder, staging: Path) -> None:
    out = folder.out
    if folder.action is Action.CREATE:
        if out.is_dir():
            out.rmdir()  # empty, checked; a file put there since makes this fail, not vanish
        os.rename(staging, out)
    elif folder.action is Action.REPLACE:
        aside = out.with_name(f".{out.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.rename(out, aside)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(aside, out)  # the old export back, whole
            raise
        shutil.rmtree(aside)
    else:
        _add(out, staging)


def _add(out: Path, staging: Path) -> None:
    """The staged model file(s), then the card, each renamed into ``out``: at every moment the
    card describes the files there, all of one model."""
    for built in sorted(p for p in staging.iterdir() if p.name != CARD):
        target = out / built.name
        if target.exists():  # a SavedModel is a folder, which a rename cannot overwrite
            os.rename(target, staging / f".old-{built.name}")
        os.rename(built, target)
    os.replace(staging / CARD, out / CARD)


def _make_parents(out: Path) -> Path | None:
    """Create ``out``'s missing parents; the topmost one made, to remove on failure."""
    missing = [p for p in out.parents if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    return missing[-1] if missing else None


def _remove_empty(top: Path | None) -> None:
    if top is None:
        return
    with suppress(OSError):  # something put there meanwhile stays, and its folders
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            folder.rmdir()
        top.rmdir()
