"""The package's version, in a module of its own: the packages that record it (``store``,
``sweep``, ``cli``) import it from here, not from ``tlsweep``, whose ``__init__`` imports the
Python API that sits above them."""

__version__ = "0.1.0"
