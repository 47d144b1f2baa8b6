"""Labelled image folders: layouts, splits, decoding, the decoded-image cache and duplicate
detection."""

from tlsweep.datasets._data import (
    Dataset,
    check_layout,
    class_weights,
    load_dataset,
    split_sizes,
    stratified_splits,
)
from tlsweep.datasets._duplicates import find_duplicates
from tlsweep.datasets._images import (
    Skipped,
    cache_root,
    decode_image,
    decode_or_skip,
    load_folder,
    scan_classes,
)

__all__ = [
    "Dataset",
    "Skipped",
    "cache_root",
    "check_layout",
    "class_weights",
    "decode_image",
    "decode_or_skip",
    "find_duplicates",
    "load_dataset",
    "load_folder",
    "scan_classes",
    "split_sizes",
    "stratified_splits",
]
