"""Sweep and search-space files -> validated, frozen objects.

Validation is strict: an unknown key, a wrong type or an impossible range is a ``ConfigError`` that
names the file, the key and what is allowed. Relative paths are resolved against the directory of
the file that holds them, so a sweep can be launched from anywhere.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tlsweep.config._base import ResolvedPath, Strict, is_replay, read_yaml, validate
from tlsweep.config._inert import (
    idle_pruner,
    ignored_finalists_option,
    ignored_pruner_option,
    ignored_sampler_option,
    ignored_tuner_option,
)
from tlsweep.config._space import SearchSpace, load_space

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def refuse_inert(model: Any, info: ValidationInfo, message: str | None) -> Any:
    """``model``, unless ``message`` says one of its options can never act (``_inert``)."""
    if message is not None and not is_replay(info):
        raise ValueError(message)
    return model


def parse_duration(value: Any) -> float | None:
    """``2h``, ``90m``, ``1h30m``, ``45s`` or a number of seconds."""
    if value is None or isinstance(value, int | float):
        return value
    if str(value).strip().isdigit():  # plain seconds, as the message below suggests
        return float(str(value).strip())
    match = _DURATION.match(str(value).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration; write e.g. 2h, 90m, 1h30m, 45s or 3600")
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


class DataConfig(Strict):
    """``dir`` (one folder per class, split by ``val_split``), or ``train_dir`` + ``val_dir``.

    A test set (``test_dir``, or ``test_split`` of ``dir``, carved out before validation) never
    reaches the sampler, the pruner or the choice of the winner; it scores the finalists once
    the search ends. ``duplicates``: ``move`` takes out of validation and test every image that
    copies one in an earlier split (train, then val), so that neither is inflated, and trains on
    it; ``drop`` discards them; ``keep`` only reports them."""

    dir: ResolvedPath | None = None
    val_split: float | None = Field(default=None, gt=0.0, lt=1.0)
    test_split: float | None = Field(default=None, gt=0.0, lt=1.0)
    train_dir: ResolvedPath | None = None
    val_dir: ResolvedPath | None = None
    test_dir: ResolvedPath | None = None
    image_size: int = Field(default=160, ge=8, le=2048)
    duplicates: Literal["move", "drop", "keep"] = "move"

    @model_validator(mode="after")
    def _one_layout(self) -> DataConfig:
        split = self.train_dir is not None or self.val_dir is not None
        if self.dir is not None and split:
            raise ValueError("give either dir (with val_split) or train_dir + val_dir, not both")
        if self.dir is None and not (self.train_dir and self.val_dir):
            raise ValueError("give dir (with val_split) or both train_dir and val_dir")
        if split and self.val_split is not None:
            raise ValueError("val_split only applies to dir; train_dir/val_dir are already split")
        if self.test_split is not None and self.test_dir is not None:
            raise ValueError("give either test_split (a share of dir) or test_dir, not both")
        if self.test_split is not None and self.dir is None:
            raise ValueError("test_split only applies to dir; with train_dir/val_dir give "
                             "test_dir")
        if self.test_split is not None and self.test_split + self.split >= 1:
            raise ValueError(f"test_split + val_split must be below 1 (got {self.test_split} + "
                             f"{self.split}): both are shares of dir, and training needs the "
                             f"rest")
        return self

    @property
    def split(self) -> float:
        return 0.2 if self.val_split is None else self.val_split


class BudgetConfig(Strict):
    trials: int = Field(default=20, ge=1)
    timeout: Annotated[float | None, Field(default=None, gt=0)] = None
    # Training epochs over all trials (pruned ones count what they ran): no trial starts once
    # they are spent. The fair budget when comparing searches that prune differently.
    epochs: int | None = Field(default=None, ge=1)

    @field_validator("timeout", mode="before")
    @classmethod
    def _parse_timeout(cls, value: Any) -> float | None:
        return parse_duration(value)


class TrainingConfig(Strict):
    """``head_init: probe`` starts the head as the logistic-regression probe on frozen features
    (the study's baseline, with the trial's class weights): LP-FT's linear probing (Kumar et
    al. 2022). ``augment_head: false`` trains phase 1 on cached features in every trial, cheap
    enough to run it to convergence, and augmentation acts in phase 2 only; ``true``: phase 1
    runs through the backbone with augmentation whenever the strength is above 0. Measured in
    benchmarks/RESULTS.md ("Fixed recipes", "Beat the probe")."""

    head_epochs: int = Field(default=2, ge=1)
    finetune_epochs: int = Field(default=10, ge=0)
    batch_size: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    augment_head: bool = False
    head_init: Literal["probe", "random"] = "probe"

    @property
    def total_epochs(self) -> int:
        """A full trial's steps: both phases' epochs."""
        return self.head_epochs + self.finetune_epochs


class PrunerConfig(Strict):
    """``median`` compares a trial's best epoch so far with the others' at the same step: with
    the head started from the probe (``training.head_init``), that best is the probe's score in
    every trial, and it stops almost none; ``successive_halving`` compares the epoch's own
    value. ``min_finetune_epochs``: no trial is pruned before it has run that many fine-tune
    epochs, so that none is judged on head-phase accuracy alone, before its unfreeze depth and
    fine-tune rate have had any effect (0: the pruner may stop a trial at any epoch)."""

    kind: Literal["median", "successive_halving", "hyperband", "none"] = "successive_halving"
    min_finetune_epochs: int = Field(default=4, ge=0)
    # Optuna's PatientPruner around the kind: prune only after this many epochs without
    # improvement of the trial's own best (noisy small validation sets); none: no wrapper.
    patience: int | None = Field(default=None, ge=0)
    n_startup_trials: int = Field(default=3, ge=0)
    n_warmup_steps: int = Field(default=1, ge=0)
    min_resource: int = Field(default=2, ge=1)
    reduction_factor: int = Field(default=3, ge=2)

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> PrunerConfig:
        return refuse_inert(self, info, ignored_pruner_option(self))


class SamplerConfig(Strict):
    kind: Literal["tpe", "random"] = "tpe"
    n_startup_trials: int = Field(default=5, ge=0)
    # The study's first trial is the default recipe (AnchorConfig's values, clipped into the
    # space), trained for the sweep's schedule: the search starts from a measured point, not a
    # random one. Without an anchor only; an anchor is enqueued first anyway.
    start_from_default: bool = False

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> SamplerConfig:
        return refuse_inert(self, info, ignored_sampler_option(self))


class TunerConfig(Strict):
    """keras-tuner's own search, for ``engine: keras-tuner``."""

    kind: Literal["hyperband", "bayesian", "random"] = "hyperband"
    factor: int = Field(default=3, ge=2)  # Hyperband's reduction factor
    hyperband_iterations: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> TunerConfig:
        return refuse_inert(self, info, ignored_tuner_option(self))


class AnchorConfig(Strict):
    """A fixed LP-FT recipe the search must beat: enqueued as the study's first trial, and in a
    re-evaluating finalists' stage cross-validated beside the top ``k`` on the same folds,
    trained for its own schedule (``head_epochs`` + ``finetune_epochs``, head started as the
    probe, phase 1 on cached features) rather than to a validated epoch. Delivered when its
    pooled out-of-fold score is the finalists' best. The defaults are recipe N of
    benchmarks/RESULTS.md ("Fixed recipes refit on train+val"). A value the search space
    excludes is clipped into its range; one it fixes is the space's."""

    unfreeze_depth: float = Field(default=0.3, ge=0.0, le=1.0)
    head_lr: float = Field(default=1e-5, gt=0.0)
    finetune_lr: float = Field(default=1e-4, gt=0.0)
    augmentation_strength: float = Field(default=0.6, ge=0.0, le=1.0)
    # auto: balanced under a balanced-accuracy objective, else none: a recipe fixed before the
    # data is seen must not train unweighted where the score weighs every class alike
    # (DESIGN.md §3b; the anchor trained unweighted recalled 0.43 of a minority class).
    class_weighting: Literal["auto", "none", "balanced", "sqrt"] = "auto"
    head_epochs: int = Field(default=1, ge=1)
    finetune_epochs: int = Field(default=25, ge=1)

    @property
    def total_epochs(self) -> int:
        return self.head_epochs + self.finetune_epochs

    def weighting_for(self, objective: str) -> str:
        """The class weighting this recipe trains with under the study's ``objective``."""
        if self.class_weighting != "auto":
            return self.class_weighting
        return "balanced" if objective == "val_balanced_accuracy" else "none"


class FinalistsConfig(Strict):
    """What happens once the search ends: the top ``k`` trials and the linear-probe baseline
    are scored on the test set, and, on small data, re-evaluated first by ``folds``-fold
    cross-validation over train+val, because the best of many noisy validation scores is biased
    upward. ``reevaluate: auto`` does it below ``small_data_images`` train+val images.
    ``deliver``: the chosen settings refit on train+val, the best fold's model, or the average
    of the chosen finalist's fold models (``ensemble``: no training beyond the folds')."""

    k: int = Field(default=3, ge=1)
    reevaluate: Literal["auto", "on", "off"] = "auto"
    # Each fold's model trains on (folds-1)/folds of train+val while the delivered refit trains
    # on all of it, so fewer folds bias the estimate down (benchmarks/RESULTS.md, "Folds").
    folds: int = Field(default=5, ge=2, le=10)
    small_data_images: int = Field(default=2000, ge=1)
    deliver: Literal["refit", "best_fold", "ensemble"] = "refit"
    anchor: AnchorConfig | None = None  # ``anchor: true`` for the defaults
    # Re-evaluated, the probe is cross-validated on the finalists' folds; ``true``: it is the
    # default there, and the chosen finalist is delivered only when it leads the probe by more
    # than ``margin_se``; otherwise the probe (refit on train+val) is, as good as far as the
    # data can tell, and cheaper. ``false``: a fine-tuned finalist is always delivered. On by
    # default since the suite (benchmarks/RESULTS.md, "The benchmark suite"): a fine-tuned
    # model delivered without that check lost to the probe on imbalanced sets.
    probe_competes: bool = True
    # A challenger displaces the default only when it leads by more than this many standard
    # errors of their paired out-of-fold gap: a searched finalist the anchor, the chosen
    # finalist the probe (training._choice). 0: the top score wins, however slight its lead.
    margin_se: float = Field(default=1.0, ge=0.0)
    # Processes that train the folds side by side (training._folds). ``auto``: one per CPU core,
    # each with one thread, on CPU; the stage's own process on a GPU. 1: that process alone, the
    # default: two one-thread workers did not shorten the stage on 2 cores (benchmarks/RESULTS.md,
    # "Fold workers").
    fold_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = 1

    @field_validator("anchor", mode="before")
    @classmethod
    def _anchor_switch(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("reevaluate", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> FinalistsConfig:
        return refuse_inert(self, info, ignored_finalists_option(self))


class ExecutionConfig(Strict):
    """How trials run: worker memory, failure tolerance and what is kept on disk."""

    keep_top: int = Field(default=3, ge=0)  # final .keras models kept for the best trials
    max_consecutive_failures: int = Field(default=5, ge=1)
    memory_limit_mb: int | None = Field(default=None, ge=64)  # address space a trial may add
    recycle_memory_mb: int = Field(default=6000, ge=256)  # replace a worker past this RSS
    heartbeat_interval_s: int = Field(default=30, ge=1)  # RDB storages (PostgreSQL, SQLite)
    heartbeat_grace_s: int = Field(default=120, ge=2)  # silent this long: failed and re-queued
    # Per-trial overhead (see training/_warm.py): reuse compiled models across a worker's
    # trials, and train phase 1 without augmentation on cached backbone features.
    reuse_models: bool = True
    cache_frozen_features: bool = True
    # auto: mixed_float16 on GPUs of compute capability 7.x, else float32 (precision_policy).
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    jit_compile: bool = False  # XLA: slower on CPU (benchmarks/RESULTS.md)
    # Skip Grappler's graph rewrites: faster tracing, possibly slower steps (benchmarks/).
    reduced_graph_optimization: bool = False
    # Checkpoints of every worker; with a shared database it must be a folder that every
    # machine reaches (NFS, a shared disk). Default: results/<study>/trials.
    checkpoint_dir: ResolvedPath | None = None


class SweepConfig(Strict):
    study: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    data: DataConfig
    search_space: ResolvedPath
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # NumPy and TensorFlow seeds are 32-bit
    budget: BudgetConfig = BudgetConfig()
    training: TrainingConfig = TrainingConfig()
    objective: Literal["val_accuracy", "val_balanced_accuracy"] = "val_accuracy"
    pruner: PrunerConfig = PrunerConfig()
    sampler: SamplerConfig = SamplerConfig()
    # optuna: our sampler, pruner, worker subprocesses and resumable trials. keras-tuner: the
    # same trials searched by keras-tuner (``tuner``), for comparison and for its users.
    engine: Literal["optuna", "keras-tuner"] = "optuna"
    tuner: TunerConfig | None = None
    execution: ExecutionConfig = ExecutionConfig()
    finalists: FinalistsConfig = FinalistsConfig()

    @model_validator(mode="after")
    def _options_match_the_engine(self) -> SweepConfig:
        if self.tuner is not None and self.engine != "keras-tuner":
            raise ValueError("'tuner' configures keras-tuner: set engine: keras-tuner, or "
                             "remove 'tuner' (the optuna engine uses 'sampler' and 'pruner')")
        if self.finalists.anchor is not None and self.engine == "keras-tuner":
            raise ValueError("'finalists.anchor' is enqueued as an Optuna trial: set engine: "
                             "optuna, or remove 'anchor'")
        if self.finalists.anchor is not None and self.finalists.reevaluate == "off":
            raise ValueError("'finalists.anchor' is trained for its schedule only when the "
                             "finalists are cross-validated: set finalists.reevaluate to auto "
                             "or on, or remove 'anchor'")
        ignored = sorted({"sampler", "pruner"} & self.model_fields_set)
        if ignored and self.engine == "keras-tuner":
            raise ValueError(f"{ignored[0]!r} configures the optuna engine, and keras-tuner "
                             f"would ignore it: remove it, and choose keras-tuner's search "
                             f"with tuner: {{kind: hyperband|bayesian|random}}")
        return self

    @model_validator(mode="after")
    def _the_pruner_can_act(self, info: ValidationInfo) -> SweepConfig:
        # keras-tuner has no use for the pruner, whose defaults then stand unused.
        if self.engine != "optuna":
            return self
        return refuse_inert(self, info, idle_pruner(self.pruner, self.training))

    @property
    def tuner_or_default(self) -> TunerConfig:
        return self.tuner or TunerConfig()


class Sweep(BaseModel):
    """A loaded sweep: the validated config, its search space and where both came from."""

    model_config = ConfigDict(frozen=True)

    config: SweepConfig
    space: SearchSpace
    path: Path
    text: str
    space_text: str

    @property
    def sha256(self) -> str:
        """Hash of both files' contents: a changed search space is a changed sweep."""
        return hashlib.sha256((self.text + "\0" + self.space_text).encode()).hexdigest()



# ----------------------------------------------------------------------------- loading
def load_sweep(path: Path | str, text: str | None = None,
               space_text: str | None = None) -> Sweep:
    """Load from disk, or from stored texts (``text``, ``space_text``) as if they were at
    ``path``, which is how a study replays the sweep it was created with."""
    path, replay = Path(path), text is not None
    data, text = read_yaml(path, "sweep file", text)
    config: SweepConfig = validate(SweepConfig, data, path, replay)
    space, space_text = load_space(config.search_space, space_text)
    # Pydantic runs a model's after-validators again on an instance it is handed: the same
    # context, so that a replay stays one.
    return Sweep.model_validate({"config": config, "space": space, "path": path.resolve(),
                                 "text": text, "space_text": space_text},
                                context={"replay": replay})


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changed_keys(old_text: str, new_text: str) -> list[str]:
    """Dotted keys whose values differ between two YAML documents."""
    old, new = _flatten(yaml.safe_load(old_text) or {}), _flatten(yaml.safe_load(new_text) or {})
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
