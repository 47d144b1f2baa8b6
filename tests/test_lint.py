import shutil
import subprocess
from pathlib import Path

import pytest


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=repo,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
