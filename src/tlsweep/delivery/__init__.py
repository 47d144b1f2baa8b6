"""The chosen model in use: its card, export, prediction and evaluation on new images."""

from tlsweep.delivery._evaluate import CALIBRATION_BINS, evaluate, labelled_files, write_outputs
from tlsweep.delivery._export import ExportPlan, export, plan_export
from tlsweep.delivery._formats import CHOICES, QUANTIZATIONS, export_format
from tlsweep.delivery._modelcard import FORMAT_FILES, ModelSource, resolve_source, study_source
from tlsweep.delivery._outputs import check_output_folder
from tlsweep.delivery._predict import (
    BATCH,
    OUTPUT_FORMATS,
    check_output,
    decode_batches,
    image_files,
    load_model,
    predict_files,
    write_frame,
)

__all__ = [
    "BATCH",
    "CALIBRATION_BINS",
    "CHOICES",
    "FORMAT_FILES",
    "OUTPUT_FORMATS",
    "QUANTIZATIONS",
    "ExportPlan",
    "ModelSource",
    "check_output",
    "check_output_folder",
    "decode_batches",
    "evaluate",
    "export",
    "export_format",
    "image_files",
    "labelled_files",
    "load_model",
    "plan_export",
    "predict_files",
    "resolve_source",
    "study_source",
    "write_frame",
    "write_outputs",
]
