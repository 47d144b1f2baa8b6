"""How good a score is: confidence intervals and the metrics computed from a confusion matrix."""

from tlsweep.measures._headline import Headline, headline_text, pooled_headline
from tlsweep.measures._intervals import BRODERSEN, WILSON, Estimate, estimate, wilson
from tlsweep.measures._objective import Objective
from tlsweep.measures._paired import PairedGap, paired_gap

__all__ = [
    "BRODERSEN",
    "WILSON",
    "Estimate",
    "Headline",
    "Objective",
    "PairedGap",
    "estimate",
    "headline_text",
    "paired_gap",
    "pooled_headline",
    "wilson",
]
