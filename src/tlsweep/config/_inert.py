"""Options whose value means they can never act: each is an error that names the key and the
fix, never a setting silently ignored (issue 38).

Each rule is a function that returns the message, or None; the models in ``_schema`` raise it.
A pruner of kind ``none`` is switched off on purpose, so the settings it keeps for a later kind
are not judged. Only clear cases are here: an option another kind or mode ignores, or a value
that no trial of the sweep's schedule can reach.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# Each rule takes the ``_schema`` model of its section, typed Any here: ``_schema`` calls these
# rules from its validators, and naming its types back would close an import circle.
Section = Any

# Each pruner kind's own options (beside kind, min_finetune_epochs and patience, which all take).
PRUNER_OPTIONS = {
    "median": ("n_startup_trials", "n_warmup_steps"),
    "successive_halving": ("min_resource", "reduction_factor"),
    "hyperband": ("min_resource", "reduction_factor"),
}
# What the finalists' stage reads only when it cross-validates them.
CROSS_VALIDATION_OPTIONS = ("folds", "deliver", "probe_competes", "margin_se", "fold_workers",
                            "small_data_images")
TUNER_HYPERBAND_OPTIONS = ("factor", "hyperband_iterations")


def _set(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    """The options of ``names`` that the file sets (a default left alone is never an error)."""
    return [name for name in names if name in model.model_fields_set]


def _shown(model: BaseModel, section: str, name: str) -> str:
    default = "" if name in model.model_fields_set else ", the default"
    return f"{section}.{name} ({getattr(model, name)}{default})"


def ignored_pruner_option(pruner: Section) -> str | None:
    if pruner.kind == "none":
        return None
    others = {name for kind, names in PRUNER_OPTIONS.items() if kind != pruner.kind
              for name in names} - set(PRUNER_OPTIONS[pruner.kind])
    stray = _set(pruner, tuple(sorted(others)))
    if not stray:
        return None
    owners = [kind for kind, names in PRUNER_OPTIONS.items() if stray[0] in names]
    pruners = f"{' and '.join(owners)} pruner" + ("s" if len(owners) > 1 else "")
    return (f"{stray[0]} is an option of the {pruners}, and kind "
            f"{pruner.kind} ignores it: remove it, or set kind: {owners[0]}")


def idle_pruner(pruner: Section, training: Section) -> str | None:
    """Why the pruner can never stop a trial of this schedule, or None. Steps are a trial's
    epochs, both phases, counted from 0."""
    if pruner.kind == "none":
        return None
    steps = training.total_epochs
    never = "so the pruner would never act"
    if pruner.min_finetune_epochs > training.finetune_epochs:
        return (f"{_shown(pruner, 'pruner', 'min_finetune_epochs')} is above "
                f"{_shown(training, 'training', 'finetune_epochs')}: no trial runs that many "
                f"fine-tune epochs, {never}. Lower pruner.min_finetune_epochs to at most "
                f"{training.finetune_epochs}, or set pruner.kind: none")
    reach = f"a trial's {steps} epochs (training.head_epochs + training.finetune_epochs)"
    if pruner.kind == "median" and pruner.n_warmup_steps >= steps:
        return (f"{_shown(pruner, 'pruner', 'n_warmup_steps')} is not below {reach}: the "
                f"median pruner waits that many steps, {never}. Lower it to at most "
                f"{steps - 1}, or set pruner.kind: none")
    if pruner.kind in ("successive_halving", "hyperband") and pruner.min_resource >= steps:
        return (f"{_shown(pruner, 'pruner', 'min_resource')} is not below {reach}: the first "
                f"rung is never reached, {never}. Lower it to at most {steps - 1}, or set "
                f"pruner.kind: none")
    # Optuna's PatientPruner looks only once a trial has reported more than patience + 1 steps.
    if pruner.patience is not None and pruner.patience + 2 > steps:
        return (f"pruner.patience ({pruner.patience}) needs more than patience + 1 of {reach}, "
                f"{never}. Lower it to at most {max(steps - 2, 0)}, or remove it")
    return None


def ignored_sampler_option(sampler: Section) -> str | None:
    if sampler.kind == "random" and _set(sampler, ("n_startup_trials",)):
        return ("n_startup_trials is TPE's (its random trials before it follows the results), "
                "and kind random ignores it: remove it, or set kind: tpe")
    return None


def ignored_tuner_option(tuner: Section) -> str | None:
    stray = _set(tuner, TUNER_HYPERBAND_OPTIONS)
    if tuner.kind != "hyperband" and stray:
        return (f"{stray[0]} is an option of keras-tuner's hyperband, and kind {tuner.kind} "
                f"ignores it: remove it, or set kind: hyperband")
    return None


def ignored_finalists_option(finalists: Section) -> str | None:
    stray = _set(finalists, CROSS_VALIDATION_OPTIONS)
    if finalists.reevaluate == "off" and stray:
        return (f"{stray[0]} acts only when the finalists are cross-validated, and reevaluate "
                f"is off: remove it, or set reevaluate to auto or on")
    if finalists.reevaluate == "on" and "small_data_images" in stray:
        return ("small_data_images decides whether to cross-validate only under reevaluate: "
                "auto, and reevaluate is on: remove it, or set reevaluate: auto")
    return None
