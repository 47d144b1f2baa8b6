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


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    return (Path(base) / path).resolve() if base and not path.is_absolute() else path


ResolvedPath = Annotated[Path, AfterValidator(resolve_path)]


def read_yaml(path: Path, what: str, text: str | None = None) -> tuple[dict[str, Any], str]:
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
        data = yaml.safe_load(text)
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
    key = ".".join(loc) if loc else "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    shown = "" if error["type"] in ("value_error", "missing") else f" (got {error['input']!r})"
    return f"key {key!r}: {message}{shown}"


def validate(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        lines = [describe(e) for e in exc.errors()]
        raise ConfigError(f"{path}: " + "; ".join(lines[:3])
                          + (f" (and {len(lines) - 3} more)" if len(lines) > 3 else "")) from None
