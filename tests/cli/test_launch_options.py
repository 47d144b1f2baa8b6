"""The options every trial-running command shares, written once (``cli._shared.launch_options``)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("command", ["run", "resume"])
def test_run_and_resume_take_the_same_launch_options(command: str) -> None:
    done = run_cli(command, "--help")
    assert done.returncode == 0
    for option in ("--storage", "--workers", "--gpus", "--results-dir"):
        assert option in done.stdout, option


@pytest.mark.parametrize("command, target", [("run", "missing.yaml"), ("resume", "nosuch")])
def test_a_bad_gpu_list_is_refused_before_anything_else(command: str, target: str) -> None:
    done = run_cli(command, target, "--gpus", "0,x")
    assert done.returncode == 2 and "--gpus" in done.stderr and "Traceback" not in done.stderr
