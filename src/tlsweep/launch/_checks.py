"""What a launch checks before any work: the budget overridden on the command line, the shared
checkpoint folder of a shared study, and whether the engine lets several processes share one."""

from __future__ import annotations

import os
import uuid
from typing import Any

from pydantic import ValidationError

from tlsweep.config import BudgetConfig, Sweep, parse_duration
from tlsweep.engines import engine_named
from tlsweep.errors import ConfigError
from tlsweep.store import is_local
from tlsweep.sweep import Plan, checkpoint_root


def with_overrides(sweep: Sweep, trials: int | None, timeout: str | None) -> Sweep:
    budget = sweep.config.budget.model_dump()
    if trials is not None:
        budget["trials"] = trials
    if timeout is not None:
        try:
            budget["timeout"] = parse_duration(timeout)
        except ValueError as exc:
            raise ConfigError(f"--timeout: {exc}") from None
    try:
        checked = BudgetConfig(**budget)
    except ValidationError as exc:
        error = exc.errors()[0]
        option = {"trials": "--trials", "timeout": "--timeout"}.get(str(error["loc"][0]), "")
        raise ConfigError(f"{option or sweep.path}: {error['msg'].removeprefix('Value error, ')}"
                          f" (got {error['input']!r}).") from None
    config = sweep.config.model_copy(update={"budget": checked})
    return sweep.model_copy(update={"config": config})


def require_shared_checkpoints(plan: Plan, url: str) -> None:
    if not is_local(url) and plan.sweep.config.execution.checkpoint_dir is None:
        raise ConfigError(
            f"{plan.sweep.path}: execution.checkpoint_dir: a study in a shared database needs a "
            f"checkpoint folder that every worker can reach (NFS or another shared disk), so "
            f"that a trial of a dead worker resumes elsewhere. Set execution.checkpoint_dir.")


def verify_checkpoint_folder(study: Any, plan: Plan) -> None:
    """Every worker of a shared study must see the same checkpoint folder: the first one leaves
    a token there and in the study; the others must find the same token."""
    folder = checkpoint_root(plan)
    token_file = folder / ".tlsweep-study"
    expected = study.user_attrs.get("checkpoint_token")
    if expected is None:
        # Workers starting together race here: the first to link its token file in place wins
        # (os.link is atomic and refuses an existing name), and every one records that token.
        folder.mkdir(parents=True, exist_ok=True)
        candidate = folder / f".tlsweep-study.{uuid.uuid4().hex}"
        candidate.write_text(uuid.uuid4().hex)
        try:
            os.link(candidate, token_file)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
        expected = token_file.read_text().strip()
        study.set_user_attr("checkpoint_token", expected)
    found = token_file.read_text().strip() if token_file.is_file() else None
    if found != expected:
        raise ConfigError(
            f"{plan.sweep.path}: execution.checkpoint_dir: {folder} is not the checkpoint folder "
            f"the study's first worker uses (its token is missing or differs). Every worker "
            f"must reach the same folder, e.g. one NFS mount at the same path.")


def single_process(plan: Plan, what: str) -> None:
    engine = engine_named(plan.sweep.config.engine)
    if not engine.shares_a_study:
        raise ConfigError(f"{plan.sweep.path}: engine: {engine.name} runs its search in one "
                          f"process, so {what} cannot share it. Use engine: optuna for several "
                          f"workers, or run without {what}.")
