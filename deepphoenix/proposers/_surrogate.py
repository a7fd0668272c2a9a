"""A small surrogate of the score over a grammar's sites, to rank candidates before any is
evaluated ("sample widely, then rank").

Each variant becomes a point in [0, 1]^d: a numeric site scaled by its domain (on a log
scale for log kinds and for positive int ranges that span 16x or more), a bool as 0/1, a
categorical one-hot, a nullable site's ``None`` as its own indicator. A Gaussian process
with a squared-exponential kernel is fitted to the scored variants (scores standardized;
the length scale picked from a short grid by marginal likelihood). Candidates are chosen
one at a time by expected improvement; after each pick the model "believes" its predicted
mean there (kriging believer), so one batch spreads over the promising region instead of
piling onto one point.

Why hand-written: the run has at most a few hundred scored points, and the fit is a few
dozen lines of numpy; scikit-learn (with SciPy) would be two more heavy dependencies for it.
Everything is deterministic (no random draws), so a resumed run ranks as the original did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from deepphoenix.grammar import Kind, SiteSpec

__all__ = ["Surrogate", "encode"]

_LENGTH_SCALES = (0.1, 0.2, 0.35, 0.6, 1.0)  # per unit of sqrt(dimensions)
_NOISE = 0.05  # of the standardized score's variance: few-shot scores are noisy
_XI = 0.01  # expected improvement's margin, in standardized units


def _numeric_scale(spec: SiteSpec) -> tuple[float, float, bool] | None:
    """(low, high, log) of a numeric site's feature, None without finite bounds."""
    domain = spec.domain
    low = min(domain.values) if domain.values else domain.low
    high = max(domain.values) if domain.values else domain.high
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    log = spec.kind in (Kind.LOG_FLOAT, Kind.LOG_INT) or (
        spec.kind is Kind.INT and low > 0 and high / low >= 16)
    return float(low), float(high), log and low > 0


def encode(specs: Sequence[SiteSpec], values: Mapping[str, Any]) -> list[float]:
    """The feature vector of a variant's site values (every entry in [0, 1])."""
    row: list[float] = []
    for spec in specs:
        value = values.get(spec.name)
        if spec.nullable:
            row.append(1.0 if value is None else 0.0)
        if spec.kind is Kind.BOOL:
            row.append(1.0 if value is True else 0.0)
        elif spec.kind is Kind.CATEGORICAL:
            row.extend(1.0 if value == choice else 0.0 for choice in spec.domain.choices)
        else:
            scale = _numeric_scale(spec)
            if scale is None or not isinstance(value, int | float) or isinstance(value, bool):
                row.append(0.5)
                continue
            low, high, log = scale
            x = float(value)
            if log:
                low, high, x = math.log(low), math.log(high), math.log(max(x, 1e-300))
            row.append(min(1.0, max(0.0, (x - low) / (high - low))) if high > low else 0.5)
    return row


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return result


class Surrogate:
    """A Gaussian process over encoded site values. Lower is better (callers negate a
    maximized score)."""

    def __init__(self, x: Sequence[Sequence[float]], y: Sequence[float]) -> None:
        self.x = np.asarray(x, dtype=float).reshape(len(x), -1)
        self.y = np.asarray(y, dtype=float)
        self.mean = float(self.y.mean()) if len(self.y) else 0.0
        self.std = float(self.y.std()) if len(self.y) > 1 and self.y.std() > 0 else 1.0
        self.length = self._pick_length()
        self._fit(self.x, (self.y - self.mean) / self.std)

    def _kernel(self, a: np.ndarray, b: np.ndarray, length: float) -> np.ndarray:
        distance = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        result: np.ndarray = np.exp(-0.5 * distance / (length * length))
        return result

    def _pick_length(self) -> float:
        dims = max(1, self.x.shape[1])
        z = (self.y - self.mean) / self.std
        best, chosen = -math.inf, _LENGTH_SCALES[2] * math.sqrt(dims)
        if len(z) < 3:
            return chosen
        for scale in _LENGTH_SCALES:
            length = scale * math.sqrt(dims)
            k = self._kernel(self.x, self.x, length) + _NOISE * np.eye(len(z))
            try:
                chol = np.linalg.cholesky(k)
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
            evidence = -0.5 * float(z @ alpha) - float(np.log(np.diag(chol)).sum())
            if evidence > best:
                best, chosen = evidence, length
        return chosen

    def _fit(self, x: np.ndarray, z: np.ndarray) -> None:
        self._x, self._z = x, z
        k = self._kernel(x, x, self.length) + _NOISE * np.eye(len(z))
        self._chol = np.linalg.cholesky(k)
        self._alpha = np.linalg.solve(self._chol.T, np.linalg.solve(self._chol, z))

    def predict(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation, in standardized units, at each point."""
        points = np.atleast_2d(np.asarray(x, dtype=float))
        cross = self._kernel(points, self._x, self.length)
        mean = cross @ self._alpha
        v = np.linalg.solve(self._chol, cross.T)
        var = np.clip(1.0 - (v * v).sum(0), 1e-12, None)
        return mean, np.sqrt(var)

    def expected_improvement(self, x: ArrayLike) -> np.ndarray:
        mean, sd = self.predict(x)
        best = float(self._z.min())
        z = (best - _XI - mean) / sd
        result: np.ndarray = (best - _XI - mean) * _normal_cdf(z) + sd * _normal_pdf(z)
        return result

    def choose(self, candidates: Sequence[Sequence[float]], n: int,
               believed: Sequence[Sequence[float]] = ()) -> list[int]:
        """Indices of `n` candidates picked one by one by expected improvement, each pick
        added to the model at its predicted mean before the next (ties: the earlier).
        `believed` points (candidates under evaluation) are added the same way first."""
        picked: list[int] = []
        x, z = self._x, self._z
        if len(believed):
            extra = np.asarray(believed, dtype=float).reshape(len(believed), -1)
            mean, _sd = self.predict(extra)
            x, z = np.vstack([x, extra]), np.concatenate([z, mean])
            self._fit(x, z)
        points = np.asarray(candidates, dtype=float).reshape(len(candidates), -1)
        for _ in range(min(n, len(candidates))):
            scores = self.expected_improvement(points)
            scores[picked] = -np.inf
            index = int(np.argmax(scores))
            picked.append(index)
            mean, _sd = self.predict(points[index:index + 1])
            x = np.vstack([x, points[index:index + 1]])
            z = np.concatenate([z, mean])
            self._fit(x, z)
        self._fit(self.x, (self.y - self.mean) / self.std)
        return picked
