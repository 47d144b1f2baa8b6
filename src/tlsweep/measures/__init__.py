"""How good a score is: confidence intervals and the metrics computed from a confusion matrix."""

from tlsweep.measures._intervals import BRODERSEN, WILSON, Estimate, estimate, wilson
from tlsweep.measures._objective import Objective

__all__ = [
    "BRODERSEN",
    "WILSON",
    "Estimate",
    "Objective",
    "estimate",
    "wilson",
]
