"""tlsweep: find the transfer-learning setup that works for an image dataset, by experiment.

From Python (a notebook, say): `run` a sweep, `load` a study to read it, `load_model` to use
its model. `import tlsweep` imports none of their dependencies: each function does, when called.
"""

from tlsweep._version import __version__ as __version__
from tlsweep.api import Model, Predictions, Study, load, load_model, run

__all__ = [
    "Model",
    "Predictions",
    "Study",
    "load",
    "load_model",
    "run",
]
