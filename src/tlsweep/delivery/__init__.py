"""The chosen model in use: its card, export, prediction and evaluation on new images."""

from tlsweep.delivery._evaluate import CALIBRATION_BINS, evaluate, labelled_files, write_outputs
from tlsweep.delivery._export import export
from tlsweep.delivery._modelcard import FORMAT_FILES, ModelSource, resolve_source, study_source
from tlsweep.delivery._predict import OUTPUT_FORMATS, image_files, predict_files, write_frame

__all__ = [
    "CALIBRATION_BINS",
    "FORMAT_FILES",
    "OUTPUT_FORMATS",
    "ModelSource",
    "evaluate",
    "export",
    "image_files",
    "labelled_files",
    "predict_files",
    "resolve_source",
    "study_source",
    "write_frame",
    "write_outputs",
]
