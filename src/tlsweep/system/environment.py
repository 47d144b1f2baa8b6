"""The environment variables tlsweep reads, named once: what each one is for."""

from __future__ import annotations

RESULTS = "TLSWEEP_RESULTS"  # the results root (default ./results)
CACHE = "TLSWEEP_CACHE"  # decoded images and frozen features (default ~/.cache/tlsweep)
# How a parent hands a storage URL to its workers: never argv, where `ps` shows a password.
STORAGE = "TLSWEEP_STORAGE"
THREADS = "TLSWEEP_THREADS"  # a worker's share of the CPU cores (TensorFlow intra-op threads)
# "1": the finalists' stage follows this worker's search in its parent (``run --workers N``),
# so the search leaves it its share of budget.timeout.
STAGE_FOLLOWS = "TLSWEEP_STAGE_FOLLOWS"
PLAIN_OUTPUT = "TLSWEEP_PLAIN_OUTPUT"  # "1": no live display, plain lines (workers, pipes)
OFFLINE = "TLSWEEP_OFFLINE"  # set and not "0": never download ImageNet weights
# A failpoint for tests and drills, e.g. "trial=3,step=4:sigkill" (see worker.FAILPOINT).
FAILPOINT = "TLSWEEP_FAILPOINT"
