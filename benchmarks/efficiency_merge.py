"""One search-efficiency report over several finished runs of ``search_efficiency.py``: for an
arm rerun on other seeds (say ``--arms kt-hyperband --seeds 1 2 --out runs/kt12``) beside the
run it completes. Runs nothing; writes search_efficiency.md and .png beside this file and
replaces their section of benchmarks/RESULTS.md, as the benchmark does.

    python benchmarks/efficiency_merge.py benchmarks/runs/search_efficiency \
        benchmarks/runs/search_efficiency_kt benchmarks/runs/search_efficiency_kt12

Each (arm, seed) comes from the first run that has it. Every run reruns the reference (each
arm is judged against it); a later run's reference is checked against the kept one, not kept.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from search_efficiency import FULL, HERE, Paths, load_run, publish, summarise, update_results


def merge_runs(folders: list[Path]) -> tuple[Paths, dict[tuple[str, int], float], list[str]]:
    """Several runs' arms as one: each (arm, seed) from the first run that has it. The
    reference reruns in every run (each arm is judged against it), so a later run's reference
    is compared with the kept one instead of kept: a sweep is deterministic given its seed, so
    a difference means the runs are not comparable, and the note says so."""
    paths: Paths = {}
    walls: dict[tuple[str, int], float] = {}
    notes = []
    for folder in folders:
        more_paths, more_walls, command = load_run(folder)
        said = f"`{command}`" if command else "command not recorded"
        notes.append(f"- `{folder.name}`: {said}; arms "
                     + ", ".join(f"{arm} s{seed}" for arm, seed in more_paths) + ".")
        for key, path in more_paths.items():
            if key not in paths:
                paths[key], walls[key] = path, more_walls[key]
            elif key[0] != "reference":
                raise SystemExit(f"{key[0]} seed {key[1]} is in two of the runs (the second: "
                                 f"{folder}); merge runs whose arms differ")
            else:
                kept, again = float(paths[key]["best"].iloc[-1]), float(path["best"].iloc[-1])
                same = "reproduced" if abs(kept - again) < 1e-9 else "NOT reproduced"
                notes.append(f"- reference s{key[1]} in `{folder.name}`: best {again:.4f} "
                             f"against {kept:.4f} kept: {same}.")
    missing = {seed for _, seed in paths} - {seed for arm, seed in paths if arm == "reference"}
    if missing:
        raise SystemExit(f"no reference run for seeds {sorted(missing)}: nothing to judge by")
    return paths, walls, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="search_efficiency.py --out folders")
    folders = parser.parse_args().runs
    paths, walls, notes = merge_runs(folders)
    setup = replace(FULL, seeds=sorted({seed for _, seed in paths}))
    command = "python benchmarks/efficiency_merge.py " + " ".join(map(str, folders))
    section = publish(paths, summarise(paths, walls, setup), setup, folders[0] / "data",
                      f"merged by `{command}` from these runs", HERE, tuple(notes))
    update_results(section)
    print(section)


if __name__ == "__main__":
    main()
