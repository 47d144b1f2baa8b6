"""What every layer leans on: atomic file writes, durations as text, the TLSWEEP_* environment
variables, process checks, the usable cores, resident memory and TensorFlow's log."""

from tlsweep.system._atomic import folder_beside, replacing, write_text
from tlsweep.system._clock import format_seconds
from tlsweep.system._folders import writable_folder
from tlsweep.system._process import peak_rss_mb, process_alive, rss_mb, usable_cores
from tlsweep.system._record import Record
from tlsweep.system._tflog import log_path, redirect_to_log, see_log, stderr_to_log

__all__ = [
    "Record",
    "folder_beside",
    "format_seconds",
    "log_path",
    "peak_rss_mb",
    "process_alive",
    "redirect_to_log",
    "replacing",
    "rss_mb",
    "see_log",
    "stderr_to_log",
    "usable_cores",
    "writable_folder",
    "write_text",
]
