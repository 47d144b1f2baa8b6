"""The delivered model's one estimate: confusion matrices pooled, the interval of the pooled
matrix, and the line that says what it was measured on beside the probe."""

from __future__ import annotations

import numpy as np
import pytest

from tlsweep.measures import Headline, estimate, headline_text, pooled_headline


def test_the_headline_pools_the_folds_and_the_test_split() -> None:
    folds = [[80, 20], [10, 40]]  # out-of-fold: 150 images
    test = [[18, 2], [1, 9]]  # test: 30 images
    found = pooled_headline([(folds, "out-of-fold"), (test, "test")], "val_balanced_accuracy")
    assert found is not None and found.metric == "balanced_accuracy" and found.n == 180
    expected = estimate(np.array([[98, 22], [11, 49]]), "balanced_accuracy")
    assert (found.value, found.low, found.high) == (expected.value, expected.low, expected.high)
    assert found.source == "out-of-fold pooled with test"
    alone = pooled_headline([(test, "test")], "val_balanced_accuracy")
    assert alone.high - alone.low > found.high - found.low  # more images, a narrower interval
    assert pooled_headline([], "val_accuracy") is None


def test_the_headline_line_names_its_images_and_the_probe_beside_it() -> None:
    headline = pooled_headline([([[45, 5], [5, 45]], "the folds")], "val_accuracy")
    probe = pooled_headline([([[40, 10], [10, 40]], "the folds")], "val_accuracy")
    text = headline_text(headline.as_dict(), probe.as_dict())
    assert text.startswith("estimate: accuracy 0.900 [") and "on 100 images: the folds" in text
    assert "Wilson" in text and "the linear probe on the same images: 0.800" in text.lower()
    assert "+0.100 against it" in text
    assert headline_text(None, None) is None
    assert Headline.from_dict(headline.as_dict()) == headline
    assert "linear probe" not in headline_text(headline.as_dict(), None)


@pytest.mark.parametrize("metric", ["val_accuracy", "val_balanced_accuracy"])
def test_the_interval_holds_the_value(metric: str) -> None:
    found = pooled_headline([([[30, 0], [3, 7]], "x")], metric)
    assert found.low <= found.value <= found.high
