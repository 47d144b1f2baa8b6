"""tlsweep: find the transfer-learning setup that works for an image dataset, by experiment."""

__version__ = "0.1.0"
