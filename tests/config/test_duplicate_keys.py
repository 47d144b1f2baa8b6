"""A key given twice in a sweep or search-space file is an error naming the file, the key and
its lines, never YAML's silent last-wins (issue 38). A study's recorded text is replayed as it
was accepted, so no recorded study is stranded. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_space, tiny_sweep, write_yaml
from tlsweep.config import load_sweep
from tlsweep.config._base import DuplicateKey, UniqueKeyLoader
from tlsweep.errors import ConfigError


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    return str(caught.value)


@pytest.mark.parametrize("text, key, where", [
    ("a: 1\nb: 2\na: 3\n", "a", "line 3: key 'a' is given twice (first on line 1)"),
    ("x:\n  y: 1\n  z: 2\n  y: 3\n", "x.y", "line 4: key 'x.y' is given twice (first on line 2)"),
    ("t: {h: 2, h: 3}\n", "t.h", "line 1: key 't.h' is given twice (columns 5 and 11)"),
    ("l:\n  - {p: 1}\n  - {p: 1, p: 2}\n", "l.1.p", "line 3"),
    ("1: a\n01: b\n", "1", "line 2"),  # one key as the mapping holds it
    ("c:\n  <<: {a: 1, a: 2}\n", "c.a", "line 2"),  # inside a merged mapping too
])
def test_the_loader_refuses_a_repeated_key_at_any_depth(text: str, key: str, where: str) -> None:
    with pytest.raises(DuplicateKey) as caught:
        yaml.load(text, Loader=UniqueKeyLoader)
    assert caught.value.key == key
    assert where in caught.value.where


def test_a_merge_may_still_be_overridden() -> None:
    """``<<`` merges keys that the mapping then sets again: that is YAML's override, not a key
    given twice."""
    text = "base: &b {a: 1, b: 2}\nc:\n  <<: *b\n  a: 3\n"
    assert yaml.load(text, Loader=UniqueKeyLoader) == {"base": {"a": 1, "b": 2},
                                                       "c": {"a": 3, "b": 2}}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    space = write_yaml(tmp_path / "space.yaml", tiny_space(None))
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(tmp_path / "data", space))
    return sweep, space


def test_a_sweep_file_that_gives_a_key_twice_names_file_key_and_lines(
        files: tuple[Path, Path]) -> None:
    sweep, _ = files
    sweep.write_text(sweep.read_text() + "seed: 7\n")  # seed: 0 is on line 4
    message = error_of(sweep)
    assert message.startswith(f"{sweep}: line 8: key 'seed' is given twice (first on line 4)")
    assert "Keep one of them" in message


def test_a_nested_key_given_twice_in_a_sweep_file_names_its_path(
        files: tuple[Path, Path]) -> None:
    sweep, _ = files
    sweep.write_text(sweep.read_text().replace("batch_size: 16", "batch_size: 16, head_epochs: 5"))
    assert "key 'training.head_epochs' is given twice" in error_of(sweep)


def test_a_search_space_file_that_gives_a_key_twice_names_that_file(
        files: tuple[Path, Path]) -> None:
    sweep, space = files
    space.write_text(space.read_text() + "head_lr: 0.001\n")
    message = error_of(sweep)
    assert message.startswith(f"{space}: line ") and "key 'head_lr' is given twice" in message


def test_a_recorded_text_is_replayed_as_it_was_accepted(files: tuple[Path, Path]) -> None:
    """A study created before this rule may hold a key twice in its record: replaying it gives
    the values it ran with (the last), rather than a study that can no longer be resumed."""
    sweep, space = files
    text = sweep.read_text() + "seed: 7\n"
    space_text = space.read_text() + "head_lr: 0.001\n"
    replayed = load_sweep(sweep, text, space_text)
    assert replayed.config.seed == 7 and replayed.space.head_lr == 0.001
