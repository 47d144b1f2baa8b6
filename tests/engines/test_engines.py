"""The Engine contract: every engine the sweep file may name is registered, and says whether
several processes may share its study."""

from __future__ import annotations

import typing

from tlsweep.config._schema import SweepConfig
from tlsweep.engines import ENGINES, engine_named


def test_every_engine_the_schema_accepts_is_registered() -> None:
    accepted = set(typing.get_args(SweepConfig.model_fields["engine"].annotation))
    assert accepted == set(ENGINES)
    for name in accepted:
        engine = engine_named(name)
        assert engine.name == name and callable(engine.search)


def test_only_the_optuna_engine_shares_a_study() -> None:
    assert engine_named("optuna").shares_a_study
    assert not engine_named("keras-tuner").shares_a_study
