"""How good a score is: confidence intervals and the metrics computed from a confusion matrix."""

from tlsweep.measures._intervals import BRODERSEN, WILSON, Estimate, estimate, wilson
from tlsweep.measures._objective import Objective
from tlsweep.measures._paired import PairedGap, paired_gap

__all__ = [
    "BRODERSEN",
    "WILSON",
    "Estimate",
    "Objective",
    "PairedGap",
    "estimate",
    "paired_gap",
    "wilson",
]
