"""The inspection commands and outside clients, on one real quickstart study."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.inspection.browser import chromium_page
from tlsweep.inspection._importance import COLUMNS
from tlsweep.store._paths import sqlite_url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs `tlsweep quickstart` once for this module; returns the study's directory."""
    root = tmp_path_factory.mktemp("quickstart")
    env = {"TLSWEEP_RESULTS": str(root / "results"), "TLSWEEP_CACHE": str(root / "cache")}
    done = run_cli("quickstart", cwd=root, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "results" / "quickstart"


def cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--results-dir", str(directory.parent))


def test_quickstart_shows_real_transfer(quickstart: Path) -> None:
    board = pd.read_parquet(quickstart / "leaderboard.parquet")
    finished = board[board["state"].isin(["complete", "pruned"])]
    assert len(finished) >= 8 and (board["state"] == "pruned").sum() >= 1
    assert board["value"].max() >= 0.90


def test_importance_after_quickstart(quickstart: Path) -> None:
    written = pd.read_parquet(quickstart / "importance.parquet")  # computed at the end of run
    assert list(written.columns) == COLUMNS and set(written["evaluator"]) == {
        "ped-anova", "fanova", "mdi"}
    done = cli(quickstart, "importance", "quickstart", "--evaluator", "fanova")
    assert done.returncode == 0 and "head_lr" in done.stdout and "█" in done.stdout
    assert "Complete and pruned trials count" in " ".join(done.stdout.split())
    again = pd.read_parquet(quickstart / "importance.parquet")
    assert set(again["evaluator"]) == {"fanova"}
    assert again["importance"].sum() == pytest.approx(1.0)


def test_show_best_trial_has_a_confusion_matrix_of_the_validation_size(quickstart: Path) -> None:
    board = pd.read_parquet(quickstart / "leaderboard.parquet")
    best = int(board.loc[board["rank"] == 1, "trial"].iloc[0])
    done = cli(quickstart, "show", "quickstart", str(best))
    assert done.returncode == 0, done.stderr
    assert "precision" in done.stdout and "│" in done.stdout  # curves with the phase boundary
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(" true \\ predicted"))
    rows = [line.split() for line in lines[start + 2:] if line.strip().startswith("digit_")]
    assert len(rows) == 5
    total = sum(int(v) for row in rows for v in row[1:])
    import optuna

    study = optuna.load_study(study_name="quickstart", storage=sqlite_url(quickstart))
    assert total == sum(study.user_attrs["class_counts"]["val"])  # the validation set's size


def test_report_renders_in_headless_chromium(quickstart: Path, tmp_path: Path) -> None:
    done = cli(quickstart, "report", "quickstart")
    assert done.returncode == 0, done.stderr
    report = quickstart / "report.html"
    pngs = sorted(p.name for p in (quickstart / "report").glob("*.png"))
    assert pngs == ["confusion.png", "curves.png", "history.png", "importance.png",
                    "parallel.png", "slices.png"]
    from PIL import Image, ImageStat

    errors: list[str] = []
    requests: list[str] = []
    with chromium_page(1200) as page:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        sizes = page.eval_on_selector_all(
            "img.plot", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight,"
                        " e.getBoundingClientRect().width, e.getBoundingClientRect().height])")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert len(sizes) == 6
    assert all(done and w > 0 and h > 0 and bw > 0 and bh > 0 for done, w, h, bw, bh in sizes)
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    stat = ImageStat.Stat(Image.open(shot).convert("L"))
    assert stat.stddev[0] > 10, "the screenshot is blank"


def test_optuna_cli_reads_our_storage(quickstart: Path) -> None:
    optuna_cli = Path(sys.executable).with_name("optuna")
    done = subprocess.run([str(optuna_cli), "trials", "--storage", sqlite_url(quickstart),
                           "--study-name", "quickstart", "-f", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    board = pd.read_parquet(quickstart / "leaderboard.parquet")
    assert len(json.loads(done.stdout)) == len(board)
    best = subprocess.run([str(optuna_cli), "best-trial", "--storage", sqlite_url(quickstart),
                           "--study-name", "quickstart", "-f", "json"],
                          capture_output=True, text=True, timeout=120)
    # The study names its metric (issue 37), so Optuna shows the value under that name.
    assert json.loads(best.stdout)["value"] == {"val_accuracy": pytest.approx(
        board["value"].max())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_optuna_dashboard_serves_our_storage(quickstart: Path) -> None:
    port = free_port()
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(dashboard), sqlite_url(quickstart), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as response:
                    assert response.status == 200
                    studies = json.loads(response.read())["study_summaries"]
                    break
            except OSError:
                assert time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["quickstart"]
        study_id = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}",
                                    timeout=30) as response:
            assert response.status == 200
            trials = json.loads(response.read())["trials"]
        assert len(trials) == len(pd.read_parquet(quickstart / "leaderboard.parquet"))
    finally:
        server.terminate()
        server.wait(10)


def test_duckdb_and_pyarrow_read_our_parquet(quickstart: Path) -> None:
    import duckdb
    import pyarrow.parquet as pq

    path = quickstart / "leaderboard.parquet"
    count = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
    assert count == pq.read_table(path).num_rows == len(pd.read_parquet(path))
