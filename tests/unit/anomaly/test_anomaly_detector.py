"""EdgeAnomalyDetector follows scikit-learn's estimator conventions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from analyzer.anomaly.detector import DEFAULT_THRESHOLD, EdgeAnomalyDetector


def _toy() -> np.ndarray:
    rng = np.random.RandomState(42)
    inliers = 0.3 * rng.randn(100, 2)
    outliers = np.array([[4.0, 4.0], [-4.0, 3.5]])
    return np.vstack([inliers, outliers])


def test_init_only_stores_parameters() -> None:
    det = EdgeAnomalyDetector(n_estimators=-5, threshold=7.0)
    assert det.get_params()["n_estimators"] == -5  # validated in fit, not here
    assert clone(det).get_params() == det.get_params()
    with pytest.raises(TypeError):
        EdgeAnomalyDetector(100)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_estimators": 0}, "n_estimators"),
        ({"max_samples": 1}, "max_samples"),
        ({"contamination": 0.9}, "contamination"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_fit_validates_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EdgeAnomalyDetector(**params).fit(_toy())  # type: ignore[arg-type]


def test_outliers_rank_last_and_are_predicted() -> None:
    X = _toy()
    det = EdgeAnomalyDetector(random_state=0)
    assert det.fit(X) is det
    scores = det.score_samples(X)
    assert set(np.argsort(scores)[:2]) == {100, 101}  # lowest = most abnormal
    assert np.allclose(det.anomaly_score(X), -scores)
    assert np.allclose(det.decision_function(X), scores - det.offset_)
    assert det.offset_ == -DEFAULT_THRESHOLD
    pred = det.predict(X)
    assert set(pred) <= {-1, 1}
    assert pred[100] == pred[101] == -1
    assert (pred[:100] == 1).mean() > 0.95
    assert det.n_features_in_ == 2


def test_contamination_share_sets_offset() -> None:
    X = _toy()
    det = EdgeAnomalyDetector(contamination=0.02, random_state=0).fit(X)
    flagged = set(np.flatnonzero(det.predict(X) == -1))
    # As in scikit-learn, the offset is the 2nd percentile of the training scores.
    assert {100, 101} <= flagged and len(flagged) == int(np.ceil(0.02 * (len(X) - 1)))


def test_seed_makes_scores_reproducible() -> None:
    X = _toy()
    a = EdgeAnomalyDetector(random_state=5).fit(X).score_samples(X)
    b = EdgeAnomalyDetector(random_state=5).fit(X).score_samples(X)
    assert np.array_equal(a, b)


def test_unfitted_and_wrong_width() -> None:
    with pytest.raises(NotFittedError):
        EdgeAnomalyDetector().score_samples(_toy())
    det = EdgeAnomalyDetector(random_state=0).fit(_toy())
    with pytest.raises(ValueError, match="features"):
        det.score_samples(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        EdgeAnomalyDetector().fit(np.zeros((1, 2)))  # one row cannot define normal
