"""The docs' generated pages, made at build time so that they cannot go stale.

An MkDocs hook (``hooks:`` in ``mkdocs.yml``) adds to the site, without writing a file to the
tree:

- ``reference/sweep-file.md``: every key of the sweep file and the search-space file, from the
  pydantic schema (``tlsweep.config``): type, default, description, nested sections;
- ``reference/commands.md``: every ``tlsweep`` command, its arguments and options with their help,
  walked from the typer app's click command tree;
- ``reference/api.md``: one mkdocstrings section per package's public face (``__all__``), every
  package under ``src/tlsweep`` that has an ``__init__.py``;
- ``repo/...``: ``benchmarks/RESULTS.md`` and ``ARCHITECTURE.md`` as pages (and the images they
  show), so that the docs link to them rather than copy them. A docs page links to them as
  ``../benchmarks/RESULTS.md``, which also works when reading ``docs/`` on a code host.

``python tools/gen_docs.py sweep-file|commands|api`` prints one page. Nothing here imports
TensorFlow: the config and the command tree are plain Python, and mkdocstrings reads the source.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# Repository files the docs link to, shown as pages of the site under repo/.
REPO_PAGES = ("benchmarks/RESULTS.md", "ARCHITECTURE.md")
REPO_PREFIX = "repo/"
GENERATED_NOTE = ("*Generated from the source when the docs are built (`tools/gen_docs.py`): "
                  "it cannot go stale.*")

if str(SRC) not in sys.path:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(SRC))


# ----------------------------------------------------------------------------- the sweep file
def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _constraints(schema: dict[str, Any]) -> str:
    bounds = [(key, sign) for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                             ("maximum", "≤"), ("exclusiveMaximum", "<"))]
    parts = [f"{sign} {schema[key]}" for key, sign in bounds if key in schema]
    for key, what in (("minLength", "length ≥"), ("maxLength", "length ≤"),
                      ("minItems", "items ≥"), ("minProperties", "entries ≥")):
        if key in schema:
            parts.append(f"{what} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"matching `{schema['pattern']}`")
    return f" ({', '.join(parts)})" if parts else ""


def _type(schema: dict[str, Any], anchors: dict[str, str]) -> str:
    """A property's type in words, its constraints, and links to nested sections."""
    name = _ref_name(schema)
    if name:
        return f"[{anchors[name][1]}](#{anchors[name][0]})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            words = " or ".join(_type(o, anchors) for o in options)
            return words + (" or `null`" if len(options) < len(schema[key]) else "")
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), anchors)}{_constraints(schema)}"
    if kind == "object":
        values = schema.get("additionalProperties")
        inner = f" of name → {_type(values, anchors)}" if isinstance(values, dict) else ""
        return f"mapping{inner}{_constraints(schema)}"
    words = {"integer": "integer", "number": "number", "boolean": "boolean", "string": "string"}
    word = "path" if schema.get("format") == "path" else words.get(kind, kind or "any")
    return f"{word}{_constraints(schema)}"


def _refs(schema: Any) -> list[str]:
    """The nested models a property refers to, in order."""
    if isinstance(schema, dict):
        found = [_ref_name(schema)] if "$ref" in schema else []
        return found + [r for v in schema.values() for r in _refs(v)]
    if isinstance(schema, list):
        return [r for v in schema for r in _refs(v)]
    return []


def _default(name: str, prop: dict[str, Any], required: set[str]) -> str:
    if name in required:
        return "required"
    if "default" not in prop:
        return ""
    value = prop["default"]
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, dict) and "$ref" in prop:
        return "its section's defaults"
    shown = json.dumps(value)
    return f"`{shown}`" if len(shown) <= 60 else "its section's defaults"


def schema_tables(model: type, anchor_prefix: str = "") -> tuple[str, list[tuple[str, str]]]:
    """Markdown for ``model`` and every model nested in it: one table per section, headed by
    its dotted key where one key reaches it, else by its name. Also the rows (dotted key,
    description), for the test that every key is described."""
    schema = model.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    # Which keys reach each nested model, walking from the top (``NAME`` for a mapping's
    # entries, as in ``backbone.choices.NAME``).
    reached: dict[str, list[str]] = {}

    def visit(node: dict[str, Any], path: str) -> None:
        for key, prop in node.get("properties", {}).items():
            entries = prop.get("additionalProperties")
            for name in dict.fromkeys(_refs(prop)):
                where = f"{path}{key}"
                if isinstance(entries, dict) and _refs(entries) == [name]:
                    where += ".NAME"
                first = name not in reached
                reached.setdefault(name, []).append(where)
                if first:
                    visit(defs[name], f"{where}.")

    visit(schema, "")
    anchors = {}
    for name, paths in reached.items():
        heading = paths[0] if len(paths) == 1 else defs[name].get("title", name)
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{anchor_prefix}{heading}".lower()).strip("-")
        anchors[name] = (anchor, f"`{heading}`" if len(paths) == 1 else heading)

    rows: list[tuple[str, str]] = []
    out: list[str] = []

    def table(node: dict[str, Any], prefix: str) -> None:
        required = set(node.get("required", ()))
        out.extend(["| key | type | default | description |", "| --- | --- | --- | --- |"])
        for key, prop in node.get("properties", {}).items():
            description = prop.get("description", "")
            rows.append((f"{prefix}{key}", description))
            out.append(f"| `{key}` | {_cell(_type(prop, anchors))} | "
                       f"{_cell(_default(key, prop, required))} | {_cell(description)} |")
        out.append("")

    if schema.get("description"):
        out.extend([schema["description"], ""])
    table(schema, "")
    for name in reached:
        anchor, heading = anchors[name]
        node = defs[name]
        out.extend([f"### {heading} {{#{anchor}}}", ""])
        if len(reached[name]) > 1:
            out.extend(["Under " + ", ".join(f"`{p}`" for p in reached[name]) + ".", ""])
        if node.get("description"):
            out.extend([node["description"], ""])
        prefix = (reached[name][0] if len(reached[name]) == 1 else heading) + "."
        table(node, prefix)
    return "\n".join(out), rows


def sweep_file_rows() -> list[tuple[str, str]]:
    """Every key of both files, dotted (the search space's under ``search_space:``), with its
    description ("" where it has none)."""
    from tlsweep.config._schema import SweepConfig
    from tlsweep.config._space import SearchSpace

    return schema_tables(SweepConfig)[1] + [
        (f"search_space:{key}", text) for key, text in schema_tables(SearchSpace)[1]]


def sweep_file_reference() -> str:
    from tlsweep.config._schema import SweepConfig
    from tlsweep.config._space import SearchSpace

    sweep, _ = schema_tables(SweepConfig)
    space, _ = schema_tables(SearchSpace, "space-")
    return "\n".join([
        "# Sweep file reference", "", GENERATED_NOTE, "",
        "Every key of the two YAML files a sweep reads, from the schema that validates them "
        "(`tlsweep.config`). A key not listed here is an error naming the allowed keys. The "
        "[sweep file guide](../sweep-file.md) shows them in use.", "",
        "## The sweep file", "", sweep,
        "## The search-space file", "",
        "Named by the sweep file's `search_space`. Each hyperparameter is a plain value (fixed) "
        "or a mapping: a range or a list of choices.", "", space,
    ])


# ----------------------------------------------------------------------------- the commands
_WORDS = {"Path": "path", "str": "text", "int": "integer", "float": "number", "bool": "flag"}


def _kind(param: Any) -> str:
    """A parameter's type in words: typer's own click keeps the annotation, click a type."""
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        annotation = descriptor.annotation
        name = getattr(annotation, "__name__", None) or str(annotation)
        args = getattr(annotation, "__args__", ())
        word = (f"list of {_WORDS.get(args[0].__name__, args[0].__name__)}" if args
                else _WORDS.get(name, name))
    else:
        word = param.type.name.lower()
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    bounds = [f"≥ {low}"] * (low is not None) + [f"≤ {high}"] * (high is not None)
    return word + (f" ({', '.join(bounds)})" if bounds else "")


def _param_row(param: Any) -> str:
    if param.param_type_name == "argument":
        dots = "..." if param.nargs == -1 else ""
        name = f"`{param.name.upper()}{dots}` (argument)"
    else:
        name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if param.required:
        default = "required"
    elif getattr(param, "is_flag", False) or param.default in (None, ()):
        default = ""
    else:
        default = f"`{param.default}`"
    help_text = getattr(param, "help", None) or ""
    if getattr(param, "envvar", None):
        help_text += f" Environment: `{param.envvar}`."
    return f"| {name} | {_cell(_kind(param))} | {_cell(default)} | {_cell(help_text)} |"


def command_reference() -> str:
    import typer.main

    from tlsweep.cli._app import app

    root = typer.main.get_command(app)
    root_ctx = root.context_class(root, info_name="tlsweep", **root.context_settings)
    out = ["# Command reference", "", GENERATED_NOTE, "",
           (root.help or "").strip(), "",
           "Every command takes `-h`/`--help`; `tlsweep --version` (`-V`) prints the version, "
           "and `tlsweep --install-completion` installs shell completion. Exit codes: "
           "[exit codes and errors](../errors.md).", ""]
    out.extend(f"- [`tlsweep {name}`](#{name}): {_cell(_first_line(cmd))}"
               for name, cmd in root.commands.items())
    out.append("")
    for name, cmd in root.commands.items():
        ctx = cmd.context_class(cmd, info_name=name, parent=root_ctx)
        usage = " ".join(["tlsweep", name, *_usage_pieces(cmd, ctx)])
        out.extend([f"## tlsweep {name} {{#{name}}}", "", (cmd.help or "").strip(), "",
                    "```text", usage, "```", ""])
        params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
        if params:
            out.extend(["| argument or option | type | default | help |",
                        "| --- | --- | --- | --- |"])
            out.extend(_param_row(p) for p in params)
            out.append("")
    return "\n".join(out)


def _usage_pieces(cmd: Any, ctx: Any) -> list[str]:
    """``[OPTIONS]`` and the arguments in capitals, as click writes them."""
    pieces = ["[OPTIONS]"] if any(p.param_type_name == "option"
                                  for p in cmd.get_params(ctx)) else []
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            name = param.name.upper() + ("..." if param.nargs == -1 else "")
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def _first_line(cmd: Any) -> str:
    return (cmd.help or "").strip().split("\n")[0]


# ----------------------------------------------------------------------------- the API
def public_packages() -> list[str]:
    """The packages under ``src/tlsweep`` with a public face (an ``__init__.py``), in name
    order; ``tlsweep`` itself first."""
    packages = sorted(p.parent.name for p in (SRC / "tlsweep").glob("*/__init__.py"))
    return ["tlsweep", *(f"tlsweep.{name}" for name in packages)]


def api_reference() -> str:
    out = ["# API", "", GENERATED_NOTE, "",
           "Each package's public face: the names its `__init__.py` lists in `__all__`. "
           "Across packages the code imports only these; the [architecture](../"
           "../ARCHITECTURE.md) says which package leans on which. The rest lives in private "
           "`_modules`.", ""]
    for package in public_packages():
        out.extend([f"## `{package}`", "", f"::: {package}", "    options:",
                    "      show_root_heading: false", "      heading_level: 3", ""])
    return "\n".join(out)


# ----------------------------------------------------------------------------- the MkDocs hook
PAGES = {
    "reference/sweep-file.md": sweep_file_reference,
    "reference/commands.md": command_reference,
    "reference/api.md": api_reference,
}
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s#]+)(#[^)\s]*)?(\))")


def _repo_files_shown(page: str) -> list[str]:
    """The files a repository page links to that exist and are not Markdown (images)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    found = []
    for match in _LINK.finditer(text):
        target = match.group(2)
        if "://" in target or target.endswith(".md"):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
        if (ROOT / path).is_file():
            found.append(path)
    return found


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    for page in REPO_PAGES:
        files.append(File.generated(config, REPO_PREFIX + page, abs_src_path=str(ROOT / page)))
        for shown in _repo_files_shown(page):
            files.append(File.generated(config, REPO_PREFIX + shown,
                                        abs_src_path=str(ROOT / shown)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Links that leave ``docs/`` for a repository page point at its copy under ``repo/``; on a
    repository page, a link to a file the site lacks becomes its text and path."""
    here = posixpath.dirname(page.file.src_uri)
    on_repo_page = page.file.src_uri.startswith(REPO_PREFIX)

    def relink(match: re.Match[str]) -> str:
        opening, target, fragment, closing = match.groups()
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(here, target))
        repo_path = resolved.removeprefix("../") if resolved.startswith("../") else None
        if repo_path in REPO_PAGES:
            target = posixpath.relpath(REPO_PREFIX + repo_path, here or ".")
        elif on_repo_page and files.get_file_from_path(resolved) is None:
            label = opening[opening.index("[") + 1:-2]
            return f"{label} (`{target}`)"
        return f"{opening}{target}{fragment or ''}{closing}"

    return _LINK.sub(relink, markdown)


if __name__ == "__main__":
    makers = {"sweep-file": sweep_file_reference, "commands": command_reference,
              "api": api_reference}
    if len(sys.argv) != 2 or sys.argv[1] not in makers:
        sys.exit(f"usage: python tools/gen_docs.py {'|'.join(makers)}")
    print(makers[sys.argv[1]]())
