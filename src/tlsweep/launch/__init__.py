"""A run's life outside the command line: ``Launcher`` runs, resumes and joins sweeps (the checks,
the study, the engine's search, the finalists' stage, the results). ``tlsweep run``, ``resume``
and ``worker`` parse their options and hand them here; so does ``tlsweep.run`` in Python."""

from tlsweep.launch._launcher import Launcher

__all__ = ["Launcher"]
