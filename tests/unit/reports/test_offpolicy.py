"""Off-policy estimators on counts, against the same formulas on one row per impression, and on simulated logs."""

from __future__ import annotations

import numpy as np
import pytest

from offerrank.reports.offpolicy import WeightsRefused, evaluate
from offerrank.reports.stats import Z


def per_impression(n, c, p, pi, q, dm):
    """The rows expanded to one entry per impression: reward, weight, reward model, direct value."""
    repeat = np.asarray(n)
    reward = np.concatenate([np.r_[np.ones(ci), np.zeros(ni - ci)] for ni, ci in zip(n, c)])
    weight = np.repeat(np.asarray(pi) / np.asarray(p), repeat)
    return reward, weight, np.repeat(q, repeat), np.repeat(dm, repeat)


def interval(terms):
    return Z * terms.std(ddof=1) / np.sqrt(len(terms))


def test_the_estimators_on_counts_equal_open_bandit_pipelines_formulas_per_impression():
    n, c = [40, 25, 60, 10], [4, 1, 9, 0]
    p, pi = [0.5, 0.25, 0.2, 0.05], [0.9, 0.05, 0.05, 0.0]
    q, dm = [0.1, 0.05, 0.15, 0.02], [0.095, 0.095, 0.12, 0.12]
    r, w, qi, dmi = per_impression(n, c, p, pi, q, dm)
    got = evaluate(np.array(n), np.array(c), np.array(p), np.array(pi), np.array(q), np.array(dm))
    ipw_terms = w * r
    assert got.ipw.value == pytest.approx(ipw_terms.mean())
    assert got.ipw.high - got.ipw.value == pytest.approx(interval(ipw_terms))
    snipw = (w * r).sum() / w.sum()
    assert got.snipw.value == pytest.approx(snipw)
    assert got.snipw.high - got.snipw.value == pytest.approx(interval(w * (r - snipw) / w.mean()))
    dr_terms = dmi + w * (r - qi)
    assert got.dr.value == pytest.approx(dr_terms.mean())
    assert got.dr.value - got.dr.low == pytest.approx(interval(dr_terms))
    assert got.effective_sample_size == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert (got.impressions, got.conversions) == (135, 14)


def test_on_policy_weights_give_the_logged_rate_and_the_whole_sample():
    n, c, p = np.array([100, 300]), np.array([10, 60]), np.array([0.25, 0.75])
    got = evaluate(n, c, p, p, np.zeros(2), np.zeros(2))
    assert got.ipw.value == pytest.approx(70 / 400) and got.snipw.value == pytest.approx(70 / 400)
    assert got.effective_sample_size == pytest.approx(400)


def test_the_intervals_cover_a_policys_true_rate_on_simulated_logs():
    """Logs of a uniformly random policy over 4 offers with known rates; the candidate always shows the best one.
    Over 200 simulated logs each 95% interval must contain the truth about 95% of the time."""
    rng = np.random.default_rng(7)
    rates = np.array([0.02, 0.05, 0.08, 0.12])
    covered = {"ipw": 0, "snipw": 0, "dr": 0}
    for _ in range(200):
        n = rng.multinomial(4_000, np.full(4, 0.25))
        c = rng.binomial(n, rates)
        target = np.array([0.0, 0.0, 0.0, 1.0])
        reward = (c + 1) / (n + 2)
        got = evaluate(n, c, np.full(4, 0.25), target, reward, np.full(4, (target * reward).sum()))
        for name in covered:
            estimate = getattr(got, name)
            covered[name] += estimate.low <= rates[3] <= estimate.high
    assert all(0.9 <= hits / 200 <= 0.99 for hits in covered.values()), covered


@pytest.mark.parametrize(
    ("propensity", "why"),
    [(0.0, r"1 rows have no finite importance weight \(target 0.5 over logged propensity 0\)"), (1e-300, "exceeds 1e")],
)
def test_weights_that_are_not_finite_or_too_large_are_refused_saying_why(propensity, why):
    # issue #54, item 9: a propensity of 0 or 1e-300 turned every estimate of its placement into NaN or inf
    n, c = np.array([100, 300]), np.array([10, 60])
    with pytest.raises(WeightsRefused, match=why):
        evaluate(n, c, np.array([propensity, 0.5]), np.array([0.5, 0.5]), np.zeros(2), np.zeros(2))
