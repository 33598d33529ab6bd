"""An isolation-forest outlier detector for edges, following scikit-learn conventions.

The forest is fitted on the store being analysed: what is normal is what this cluster does.
Its raw anomaly score is the one of Liu et al. (2008), ``s = 2 ** (-E[h(x)] / c(n))`` in (0, 1]:
about 0.5 or less for ordinary points, approaching 1 for points that random splits isolate
quickly. `threshold` is a cut on that score, so that a store without anything unusual yields
nothing above it (a contamination share would always flag its share of any store).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from analyzer.anomaly.defaults import DEFAULT_THRESHOLD

__all__ = ["EdgeAnomalyDetector", "DEFAULT_THRESHOLD"]


FloatArray = npt.NDArray[np.float64]


class EdgeAnomalyDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Isolation forest over edge features with an absolute anomaly-score threshold.

    Parameters
    ----------
    n_estimators : int, default=100
        Trees in the forest; more trees give steadier scores.
    max_samples : int or "auto", default="auto"
        Rows drawn for each tree ("auto": ``min(256, n_samples)``).
    contamination : "auto" or float in (0, 0.5], default="auto"
        "auto" cuts at `threshold`; a float cuts at that share of the training rows instead.
    threshold : float in (0, 1), default=DEFAULT_THRESHOLD
        Anomaly score above which a row is an outlier when ``contamination="auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the forest; an int makes scores reproducible.

    Attributes
    ----------
    forest_ : IsolationForest
        The fitted forest.
    offset_ : float
        ``decision_function = score_samples - offset_``; negative means outlier.
    n_features_in_ : int
        Number of features seen in `fit`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.vstack([np.zeros((50, 2)) + np.arange(50)[:, None] % 3, [[40.0, 40.0]]])
    >>> det = EdgeAnomalyDetector(random_state=0).fit(X)
    >>> int(np.argmax(det.anomaly_score(X)))
    50
    >>> int(det.predict(X)[-1])
    -1
    """

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_samples: int | Literal["auto"] = "auto",
        contamination: float | Literal["auto"] = "auto",
        threshold: float = DEFAULT_THRESHOLD,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.threshold = threshold
        self.random_state = random_state

    def _check_params(self) -> None:
        if not isinstance(self.n_estimators, Integral) or self.n_estimators < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {self.n_estimators!r}")
        if self.max_samples != "auto" and (
            not isinstance(self.max_samples, Integral) or self.max_samples < 2
        ):
            raise ValueError(
                f"max_samples must be 'auto' or an integer >= 2, got {self.max_samples!r}"
            )
        if self.contamination != "auto" and not (
            isinstance(self.contamination, Real) and 0.0 < float(self.contamination) <= 0.5
        ):
            raise ValueError(
                f"contamination must be 'auto' or in (0, 0.5], got {self.contamination!r}"
            )
        if not isinstance(self.threshold, Real) or not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")

    def fit(self, X: Any, y: Any = None) -> EdgeAnomalyDetector:
        """Fit the forest on the rows of `X` (edges of the store being analysed).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite feature values; at least two rows.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        data = check_array(X, dtype=np.float64, ensure_min_samples=2)
        rng = check_random_state(self.random_state)
        n = data.shape[0]
        max_samples = min(256, n) if self.max_samples == "auto" else min(int(self.max_samples), n)
        self.forest_ = IsolationForest(
            n_estimators=int(self.n_estimators),
            max_samples=max_samples,
            contamination="auto",
            random_state=rng.randint(np.iinfo(np.int32).max),
        ).fit(data)
        self.n_features_in_ = data.shape[1]
        if self.contamination == "auto":
            self.offset_ = -float(self.threshold)
        else:
            scores = self.forest_.score_samples(data)
            self.offset_ = float(np.percentile(scores, 100.0 * float(self.contamination)))
        return self

    def score_samples(self, X: Any) -> FloatArray:
        """Opposite of the anomaly score (scikit-learn convention: lower is more abnormal)."""
        check_is_fitted(self, "forest_")
        data = check_array(X, dtype=np.float64)
        if data.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {data.shape[1]} features; the detector was fitted "
                f"with {self.n_features_in_}"
            )
        return np.asarray(self.forest_.score_samples(data), dtype=np.float64)

    def anomaly_score(self, X: Any) -> FloatArray:
        """The forest's anomaly score in (0, 1]; higher is more anomalous."""
        return -self.score_samples(X)

    def decision_function(self, X: Any) -> FloatArray:
        """``score_samples - offset_``: negative for outliers, positive for inliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        """-1 for outliers and 1 for inliers."""
        return np.where(self.decision_function(X) < 0, -1, 1).astype(np.int64)
