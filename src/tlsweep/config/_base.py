"""What every config model shares: strict models that name the allowed keys, paths resolved
against the file that names them, and the YAML loading that turns any error into a
``ConfigError`` naming the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tlsweep.errors import ConfigError

# The tags of the fixed-or-range unions (``_space``): left out of the key a message names.
FIXED, RANGE = "fixed value", "range or choice"


class Strict(BaseModel):
    """A frozen model that names the unknown key and the allowed keys itself.

    Pydantic's own extra-forbidden message does not list what *is* allowed, which is the first thing
    a user needs to fix a typo.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            unknown = [k for k in data if k not in allowed]
            if unknown:
                raise ValueError(
                    f"unknown key {unknown[0]!r}; allowed keys here: {', '.join(allowed)}"
                )
        return data


def switch_section(value: Any) -> Any:
    """A section that may be written as a switch: ``true`` is the section with its defaults,
    ``false`` none (null), anything else the section as given."""
    if value is True:
        return {}
    return None if value is False else value


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    return (Path(base) / path).resolve() if base and not path.is_absolute() else path


ResolvedPath = Annotated[Path, AfterValidator(resolve_path)]


class DuplicateKey(yaml.YAMLError):
    """A mapping gives one key twice: YAML's loaders keep the last value without a word."""

    def __init__(self, key: str, second: yaml.Mark, first: yaml.Mark) -> None:
        super().__init__(f"key {key!r} is given twice")
        self.key, self.second, self.first = key, second, first

    @property
    def where(self) -> str:
        """Where both are: lines, or columns for a flow mapping on one line."""
        line, first = self.second.line + 1, self.first.line + 1
        if line != first:
            return f"line {line}: {self} (first on line {first})"
        return f"line {line}: {self} (columns {self.first.column + 1} and " \
               f"{self.second.column + 1})"


_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in any mapping, nested ones included.

    The whole node tree is checked before anything is built: there every mapping still holds the
    keys as written (building one folds ``<<`` merges into it, whose keys may repeat by design),
    and the path from the top is known, so the message names ``training.head_epochs``, not
    ``head_epochs``."""

    def construct_document(self, node: Node) -> Any:
        self._check_unique_keys(node, "", set())
        return super().construct_document(node)

    def _check_unique_keys(self, node: Node, where: str, visited: set[int]) -> None:
        if id(node) in visited:  # an alias: its node was checked where it was anchored
            return
        visited.add(id(node))
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._check_unique_keys(item, _dotted(where, str(index)), visited)
        if not isinstance(node, MappingNode):
            return
        seen: dict[Any, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._check_unique_keys(value_node, where, visited)
                continue
            key = self._key_of(key_node)
            if key in seen:
                raise DuplicateKey(_dotted(where, str(key)), key_node.start_mark, seen[key])
            seen[key] = key_node.start_mark
            self._check_unique_keys(value_node, _dotted(where, str(key)), visited)

    def _key_of(self, node: Node) -> Any:
        """A scalar key as the mapping will hold it (``1`` and ``01`` are one key); any other
        key by identity: PyYAML refuses an unhashable key itself, with its own message."""
        if isinstance(node, ScalarNode):
            return self.construct_object(node)
        return ("node", id(node))


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def read_yaml(path: Path, what: str, text: str | None = None) -> tuple[dict[str, Any], str]:
    """The mapping in the file at ``path``, or in ``text``: a study's record of it, replayed as
    it was accepted then (a key given twice included), so that no recorded study is stranded by
    a rule added since."""
    replay = text is not None
    if text is None:
        if not path.is_file():
            raise ConfigError(f"{path}: {what} not found. Check the path (relative paths are "
                              f"resolved against the file that names them).")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start} cannot be "
                              f"decoded). Save it as UTF-8.") from None
    try:
        # Both loaders build plain data only: UniqueKeyLoader is a SafeLoader.
        data = yaml.load(text, Loader=yaml.SafeLoader if replay else UniqueKeyLoader)
    except DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc.where}. Keep one of them: YAML would silently use "
                          f"the last.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)}).")\
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level of the {what}.")
    return data, text


def describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"] if p not in (FIXED, RANGE)]
    message = error["msg"].removeprefix("Value error, ")
    shown = "" if error["type"] in ("value_error", "missing") else f" (got {error['input']!r})"
    # A rule across sections (the whole file's) names its keys itself.
    return f"key {'.'.join(loc)!r}: {message}{shown}" if loc else f"{message}{shown}"


def is_replay(info: ValidationInfo) -> bool:
    """Whether a study's recorded text is being replayed: rules added since it was accepted
    (options that can never act) pass it, so that no recorded study is stranded."""
    return bool((info.context or {}).get("replay"))


def validate(model: type[BaseModel], data: dict[str, Any], path: Path,
             replay: bool = False) -> Any:
    try:
        return model.model_validate(data, context={"base_dir": path.parent.resolve(),
                                                   "replay": replay})
    except ValidationError as exc:
        lines = [describe(e) for e in exc.errors()]
        raise ConfigError(f"{path}: " + "; ".join(lines[:3])
                          + (f" (and {len(lines) - 3} more)" if len(lines) > 3 else "")) from None
