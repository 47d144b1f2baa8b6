"""Labelled image folders: layouts, splits, decoding, the decoded-image cache and duplicate
detection."""

from tlsweep.datasets._data import (
    Dataset,
    Skipped,
    cache_root,
    check_layout,
    class_weights,
    decode_or_skip,
    load_dataset,
    scan_classes,
    split_sizes,
    stratified_splits,
)
from tlsweep.datasets._duplicates import find_duplicates

__all__ = [
    "Dataset",
    "Skipped",
    "cache_root",
    "check_layout",
    "class_weights",
    "decode_or_skip",
    "find_duplicates",
    "load_dataset",
    "scan_classes",
    "split_sizes",
    "stratified_splits",
]
