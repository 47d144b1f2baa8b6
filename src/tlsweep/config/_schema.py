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

from tlsweep.config._base import (
    ResolvedPath,
    Strict,
    is_replay,
    read_yaml,
    switch_section,
    validate,
)
from tlsweep.config._extras import TrackingConfig, unavailable
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


class DataConfig(Strict, use_attribute_docstrings=True):
    """``dir`` (one folder per class, split by ``val_split``), or ``train_dir`` + ``val_dir``.

    A test set (``test_dir``, or ``test_split`` of ``dir``, carved out before validation) never
    reaches the sampler, the pruner or the choice of the winner; it scores the finalists once
    the search ends."""

    dir: ResolvedPath | None = None
    """Folder with one sub-folder of images per class, split here (seeded, stratified); null:
    give ``train_dir`` and ``val_dir`` instead."""
    val_split: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Share of ``dir`` held out for validation; null: 0.2. Only with ``dir``."""
    test_split: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Share of ``dir`` held out as the test set, before validation; null: none from ``dir``."""
    train_dir: ResolvedPath | None = None
    """Training images, one sub-folder per class: with ``val_dir``, a layout already split."""
    val_dir: ResolvedPath | None = None
    """Validation images, one sub-folder per class (with ``train_dir``)."""
    test_dir: ResolvedPath | None = None
    """Test images, one sub-folder per class, with either layout (instead of ``test_split``)."""
    image_size: int = Field(default=160, ge=8, le=2048)
    """Side in pixels of the square every image is resized to."""
    duplicates: Literal["move", "drop", "keep"] = "move"
    """An image that copies one in an earlier split (train, then val): ``move`` takes it out of
    validation and test, so that neither is inflated, and trains on it; ``drop`` discards it;
    ``keep`` only reports it."""

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


class BudgetConfig(Strict, use_attribute_docstrings=True):
    """When the search stops: at the first limit reached. ``tlsweep run --trials N --timeout
    2h`` overrides them for one run."""

    trials: int = Field(default=20, ge=1)
    """The most trials the study runs."""
    timeout: Annotated[float | None, Field(default=None, gt=0)] = None
    """Wall time of the whole run, finalists' stage included (the search leaves it its share):
    ``2h``, ``90m``, ``1h30m``, ``45s`` or seconds. Null: no limit."""
    epochs: int | None = Field(default=None, ge=1)
    """Training epochs over all trials (pruned ones count what they ran): no trial starts once
    they are spent; the fair budget across pruners. Null: no limit."""

    @field_validator("timeout", mode="before")
    @classmethod
    def _parse_timeout(cls, value: Any) -> float | None:
        return parse_duration(value)


class TrainingConfig(Strict, use_attribute_docstrings=True):
    """Each trial's schedule: phase 1 trains a new head on the frozen backbone, phase 2
    fine-tunes the top of the backbone with it. Measured in benchmarks/RESULTS.md ("Fixed
    recipes", "Beat the probe")."""

    head_epochs: int = Field(default=2, ge=1)
    """Epochs of phase 1, the head."""
    finetune_epochs: int = Field(default=10, ge=0)
    """Epochs of phase 2, fine-tuning; 0: phase 1 only."""
    batch_size: int = Field(default=32, ge=1)
    """Images per training step, in both phases."""
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Dropout rate before the head's softmax layer; 0: none."""
    augment_head: bool = False
    """``false``: phase 1 trains on cached frozen features in every trial, cheap enough to run
    it to convergence, and augmentation acts in phase 2 only; ``true``: phase 1 runs through the
    backbone with augmentation whenever the strength is above 0."""
    head_init: Literal["probe", "random"] = "probe"
    """``probe``: the head starts as the logistic-regression probe on frozen features (the
    study's baseline, with the trial's class weights): LP-FT's linear probing (Kumar et al.
    2022); ``random``: a freshly initialised head."""

    @property
    def total_epochs(self) -> int:
        """A full trial's steps: both phases' epochs."""
        return self.head_epochs + self.finetune_epochs


class PrunerConfig(Strict, use_attribute_docstrings=True):
    """Optuna's pruner, which stops a trial that falls behind. Its steps are a trial's epochs,
    both phases, counted from 0."""

    kind: Literal["median", "successive_halving", "hyperband", "none"] = "successive_halving"
    """``successive_halving`` and ``hyperband`` compare the epoch's own value; ``median``
    compares a trial's best epoch so far with the others' at the same step, which, with the head
    started as the probe (``training.head_init``), is the probe's score in every trial, so it
    stops almost none; ``none``: no pruning."""
    min_finetune_epochs: int = Field(default=4, ge=0)
    """No trial is pruned before it has run this many fine-tune epochs, so that none is judged
    on head-phase accuracy alone, before its unfreeze depth and fine-tune rate act; 0: the
    pruner may stop a trial at any epoch."""
    patience: int | None = Field(default=None, ge=0)
    """Wrap the pruner in Optuna's PatientPruner: prune only after this many epochs without
    improvement of the trial's own best (noisy small validation sets); null: no wrapper."""
    n_startup_trials: int = Field(default=3, ge=0)
    """``median`` only: trials that must finish before it prunes any."""
    n_warmup_steps: int = Field(default=1, ge=0)
    """``median`` only: steps (epochs) of a trial before it may be pruned."""
    min_resource: int = Field(default=2, ge=1)
    """``successive_halving`` and ``hyperband``: epochs a trial runs before its first rung."""
    reduction_factor: int = Field(default=3, ge=2)
    """``successive_halving`` and ``hyperband``: each rung lets about one trial in this many
    go on."""

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> PrunerConfig:
        return refuse_inert(self, info, ignored_pruner_option(self))


class SamplerConfig(Strict, use_attribute_docstrings=True):
    kind: Literal["tpe", "random"] = "tpe"
    """``tpe``: Optuna's TPE, which follows the results; ``random``: random search. Both are
    seeded by ``seed``."""
    n_startup_trials: int = Field(default=5, ge=0)
    """``tpe`` only: random trials before it follows the results."""
    start_from_default: bool = False
    """``true``: the study's first trial is the default recipe (``finalists.anchor``'s values,
    clipped into the space), trained for the sweep's schedule, so that the search starts from a
    measured point. With ``finalists.anchor``, the anchor is that first trial anyway."""

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> SamplerConfig:
        return refuse_inert(self, info, ignored_sampler_option(self))


class TunerConfig(Strict, use_attribute_docstrings=True):
    """keras-tuner's own search, for ``engine: keras-tuner``."""

    kind: Literal["hyperband", "bayesian", "random"] = "hyperband"
    """keras-tuner's tuner: Hyperband, Bayesian optimisation or random search."""
    factor: int = Field(default=3, ge=2)
    """``hyperband`` only: Hyperband's reduction factor."""
    hyperband_iterations: int = Field(default=1, ge=1)
    """``hyperband`` only: how many times the whole Hyperband algorithm runs."""

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> TunerConfig:
        return refuse_inert(self, info, ignored_tuner_option(self))


class AnchorConfig(Strict, use_attribute_docstrings=True):
    """A fixed LP-FT recipe the search must beat: enqueued as the study's first trial, and in a
    re-evaluating finalists' stage cross-validated beside the top ``k`` on the same folds,
    trained for its own schedule (``head_epochs`` + ``finetune_epochs``, head started as the
    probe, phase 1 on cached features) rather than to a validated epoch. Delivered when its
    pooled out-of-fold score is the finalists' best. The defaults are recipe N of
    benchmarks/RESULTS.md ("Fixed recipes refit on train+val"). A value the search space
    excludes is clipped into its range; one it fixes is the space's."""

    unfreeze_depth: float = Field(default=0.3, ge=0.0, le=1.0)
    """Fraction of the backbone's layers unfrozen from the top in phase 2."""
    head_lr: float = Field(default=1e-5, gt=0.0)
    """Learning rate of phase 1, the head."""
    finetune_lr: float = Field(default=1e-4, gt=0.0)
    """Learning rate of phase 2, fine-tuning."""
    augmentation_strength: float = Field(default=0.6, ge=0.0, le=1.0)
    """Augmentation strength, from 0 (none) to 1."""
    # DESIGN.md §3b: trained unweighted, the anchor recalled 0.43 of a minority class.
    class_weighting: Literal["auto", "none", "balanced", "sqrt"] = "auto"
    """``auto``: ``balanced`` under a ``val_balanced_accuracy`` objective, else ``none``: a
    recipe fixed before the data is seen must not train unweighted where the score weighs every
    class alike. Or one of ``none``, ``balanced``, ``sqrt``, as in the search space."""
    head_epochs: int = Field(default=1, ge=1)
    """Epochs of its phase 1, the head."""
    finetune_epochs: int = Field(default=25, ge=1)
    """Epochs of its phase 2, fine-tuning."""

    @property
    def total_epochs(self) -> int:
        return self.head_epochs + self.finetune_epochs

    def weighting_for(self, objective: str) -> str:
        """The class weighting this recipe trains with under the study's ``objective``."""
        if self.class_weighting != "auto":
            return self.class_weighting
        return "balanced" if objective == "val_balanced_accuracy" else "none"


class FinalistsConfig(Strict, use_attribute_docstrings=True):
    """What happens once the search ends: the top ``k`` trials and the linear-probe baseline
    are scored on the test set, and, on small data, re-evaluated first by ``folds``-fold
    cross-validation over train+val, because the best of many noisy validation scores is biased
    upward."""

    k: int = Field(default=3, ge=1)
    """The top trials by validation score that become finalists: cross-validated (see
    ``reevaluate``) and scored on the test set."""
    reevaluate: Literal["auto", "on", "off"] = "auto"
    """Cross-validate the finalists before the choice: ``auto`` below ``small_data_images``
    train+val images, ``on`` always, ``off`` never (the best validation score wins, and its
    trial's model is delivered)."""
    folds: int = Field(default=5, ge=2, le=10)
    """Folds of the cross-validation. Each fold's model trains on (folds-1)/folds of train+val
    while the delivered refit trains on all of it, so fewer folds bias the estimate down
    (benchmarks/RESULTS.md, "Folds")."""
    small_data_images: int = Field(default=2000, ge=1)
    """Under ``reevaluate: auto``: cross-validate when train+val holds fewer images."""
    deliver: Literal["refit", "best_fold", "ensemble"] = "refit"
    """The delivered model: ``refit``: the chosen settings trained again on train+val;
    ``best_fold``: the best of the chosen finalist's fold models; ``ensemble``: their average
    (no training beyond the folds')."""
    anchor: AnchorConfig | None = None
    """A fixed recipe the search must beat: ``true`` for its defaults, or a mapping of the
    settings to change; null or ``false``: none."""
    # On by default since the suite (benchmarks/RESULTS.md, "The benchmark suite"): a fine-tuned
    # model delivered without that check lost to the probe on imbalanced sets.
    probe_competes: bool = True
    """``true``: cross-validated, the chosen finalist is delivered only when it leads the
    linear probe by more than ``margin_se``; otherwise the probe, refit on train+val, is (as
    good as far as the data can tell, and cheaper). ``false``: the finalist always is."""
    margin_se: float = Field(default=1.0, ge=0.0)
    """A challenger displaces the default only when it leads by more than this many standard
    errors of their paired out-of-fold gap: a searched finalist the anchor, the chosen finalist
    the probe. 0: the top score wins, however slight its lead."""
    fold_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    """Processes that train the folds side by side. ``auto``: one per CPU core, each with one
    thread, on CPU; the stage's own process on a GPU. 1: that process alone (two one-thread
    workers were no faster on 2 cores: benchmarks/RESULTS.md, "Fold workers")."""

    @field_validator("anchor", mode="before")
    @classmethod
    def _anchor_switch(cls, value: Any) -> Any:
        return switch_section(value)

    @field_validator("reevaluate", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _every_option_acts(self, info: ValidationInfo) -> FinalistsConfig:
        return refuse_inert(self, info, ignored_finalists_option(self))


class ExecutionConfig(Strict, use_attribute_docstrings=True):
    """How trials run: worker memory, failure tolerance and what is kept on disk."""

    keep_top: int = Field(default=3, ge=0)
    """Final ``.keras`` models kept for the best trials; at least ``finalists.k``."""
    max_consecutive_failures: int = Field(default=5, ge=1)
    """The sweep stops after this many failed trials in a row."""
    memory_limit_mb: int | None = Field(default=None, ge=64)
    """Address space in MB that a trial may add to its worker (RLIMIT_AS): past it, allocations
    fail and the trial fails. Null: no limit."""
    recycle_memory_mb: int = Field(default=6000, ge=256)
    """Replace a worker, after a trial, once its resident memory passes this many MB."""
    heartbeat_interval_s: int = Field(default=30, ge=1)
    """Seconds between a worker's heartbeats for its trial (PostgreSQL, SQLite storages)."""
    heartbeat_grace_s: int = Field(default=120, ge=2)
    """Seconds without a heartbeat after which a trial is marked failed and re-queued."""
    reuse_models: bool = True
    """Reuse compiled models across a worker's trials (per-trial overhead: Performance)."""
    cache_frozen_features: bool = True
    """Train phase 1 without augmentation on cached backbone features."""
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    """``auto``: mixed_float16 on GPUs of compute capability 7.x (Volta, Turing), else float32;
    ``on``: mixed_float16; ``off``: float32."""
    jit_compile: bool = False
    """Compile training steps with XLA: slower on CPU (benchmarks/RESULTS.md)."""
    reduced_graph_optimization: bool = False
    """Skip TensorFlow's Grappler graph rewrites: faster tracing, possibly slower steps."""
    checkpoint_dir: ResolvedPath | None = None
    """Every worker's checkpoints; with a shared database, a folder that every machine reaches
    (NFS, a shared disk). Null: ``results/<study>/trials``."""


class SweepConfig(Strict, use_attribute_docstrings=True):
    study: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """The study's name: its results go to ``results/<study>/``; workers that name the same
    study in one storage join it."""
    data: DataConfig
    """The images, and how they are split."""
    search_space: ResolvedPath
    """The search-space file (below)."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seeds the data split, the sampler and the trials' training (32-bit, as NumPy's and
    TensorFlow's seeds are)."""
    budget: BudgetConfig = BudgetConfig()
    """When the search stops."""
    training: TrainingConfig = TrainingConfig()
    """Each trial's schedule."""
    objective: Literal["val_accuracy", "val_balanced_accuracy"] = "val_accuracy"
    """The validation score a trial is judged on: its best epoch's, over both phases.
    ``val_balanced_accuracy`` weighs every class alike, for imbalanced data."""
    pruner: PrunerConfig = PrunerConfig()
    """How the optuna engine stops trials that fall behind."""
    sampler: SamplerConfig = SamplerConfig()
    """How the optuna engine picks each trial's settings."""
    engine: Literal["optuna", "keras-tuner"] = "optuna"
    """``optuna``: tlsweep's sampler, pruner, worker subprocesses and resumable trials;
    ``keras-tuner``: the same trials searched by keras-tuner (``tuner``), for comparison."""
    tuner: TunerConfig | None = None
    """keras-tuner's search, with ``engine: keras-tuner`` only; null: its defaults there."""
    execution: ExecutionConfig = ExecutionConfig()
    """How trials run: memory, failures, what is kept, speed settings."""
    finalists: FinalistsConfig = FinalistsConfig()
    """What happens once the search ends."""
    tracking: TrackingConfig | None = None
    """Experiment trackers (MLflow) that log each finished trial; null: none."""

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
    def _what_it_asks_for_is_installed(self, info: ValidationInfo) -> SweepConfig:
        # An optional extra missing here (``_extras``): refused before any work, not on replay.
        return refuse_inert(self, info, unavailable(self.engine, self.tracking))

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
