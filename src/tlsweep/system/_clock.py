"""Durations as people read them in the terminal."""

from __future__ import annotations


def format_seconds(seconds: float | None) -> str:
    """``1m05s``, ``2h03m``; ``–`` for an unknown duration."""
    if seconds is None:
        return "–"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
