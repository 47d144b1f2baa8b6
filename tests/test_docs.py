"""The docs: the README stays a short front page whose commands CI runs, the site builds with
warnings as errors, and its generated references cover every key and command."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# The README's two commands, character for character: the first is the newcomer's first try,
# the second the test command CI runs (.ci/run).
QUICKSTART = ("pip install -e . && tlsweep quickstart           "
              "# the embedded default sweep, offline, ~2 min on 2 cores")
TESTS = ('pip install -e ".[test]" && python -m pytest     '
         "# the tests (CI runs exactly this, via .ci/run)")


def gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_at_most_250_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move detail to docs/"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"^```\w*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert first_block is not None, "README.md has no code block"
    assert first_block.group(1).splitlines() == [QUICKSTART, TESTS]


def test_ci_runs_the_readmes_test_command() -> None:
    command = TESTS.split("#")[0].strip()
    assert command in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_every_sweep_field_has_a_description() -> None:
    rows = gen_docs().sweep_file_rows()
    missing = [key for key, description in rows if not description.strip()]
    assert not missing, (f"{len(missing)} of {len(rows)} sweep-file keys have no description "
                         f"(Field(description=...)): {', '.join(missing)}")


def test_the_sweep_file_reference_covers_every_key() -> None:
    from tlsweep.config._schema import SweepConfig

    docs = gen_docs()
    keys = {key for key, _ in docs.sweep_file_rows()}
    # Every section's every field, nested ones included, and the search space's.
    for section, field in SweepConfig.model_fields.items():
        assert section in keys
        nested = getattr(field.annotation, "model_fields", None) or {}
        assert {f"{section}.{name}" for name in nested} <= keys
    assert {"finalists.anchor.finetune_epochs", "search_space:backbone",
            "search_space:backbone.choices.NAME.weights"} <= keys
    page = docs.sweep_file_reference()
    assert "### `finalists.anchor` {#finalists-anchor}" in page


def test_the_command_reference_covers_every_command_and_option() -> None:
    import typer.main

    from tlsweep.cli._app import app

    page = gen_docs().command_reference()
    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        assert f"## tlsweep {name} {{#{name}}}" in page
        for param in command.params:
            shown = param.opts[0] if param.param_type_name == "option" else param.name.upper()
            assert f"`{shown}" in page, (name, shown)


def test_the_generators_do_not_import_tensorflow() -> None:
    code = ("import runpy, sys; docs = runpy.run_path('tools/gen_docs.py'); "
            "[docs[name]() for name in ('sweep_file_reference', 'command_reference', "
            "'api_reference')]; print(sorted({'tensorflow', 'keras', 'optuna'} & "
            "set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_docs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link, a missing page or an API reference that no
    longer resolves is an error. mkdocstrings reads the source; nothing imports TensorFlow."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(REPO / "mkdocs.yml"),
                           "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    for page in ("index.html", "reference/sweep-file/index.html",
                 "reference/commands/index.html", "reference/api/index.html",
                 "repo/benchmarks/RESULTS/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
