"""Uncertainty for the evaluation report: an interval for every accuracy, and for every pair of models
a paired difference with its interval and McNemar's exact test.

- One model's accuracy on n cases: the 95 % Wilson score interval (well behaved at 0 % and 100 % and
  for small n, where the normal approximation is not).
- Two models on the same cases: the difference of their accuracies, a 95 % percentile interval from
  a paired bootstrap over cases (the same resampled cases for both models; resampled within each
  category when the accuracy is a mean of categories, as BFCL's overall is), and McNemar's exact
  p-value (a binomial test on the cases where exactly one of the two is right).
- A difference is called only when its interval excludes 0 and McNemar's exact test agrees (p < 0.05);
  otherwise the report says that no difference is shown, and why. The percentile bootstrap alone is
  too eager where the two models disagree on a handful of cases: with k disagreements all one way a
  resample misses all of them with probability ~e^-k, so at k = 4 (p = 0.125 exactly) its interval
  already excludes 0 (docs/RESULTS.md, the reward grid: `equal_max` against the default, 4 cases to 0).
- Multiplicity: a report tests every pair of models on every category and overall, each at 0.05 on its
  own. Holm's step-down adjustment (`holm`) over each family of tests (the report's overall comparisons;
  its category comparisons) gives the p-value that controls the family-wise error rate at 0.05, and
  `PairedComparison.called_holm` says whether a call survives it.
- Power: the smallest paired difference n cases detect at 80 % power (`min_detectable_difference`).
  `python -m toolrl.evaluation.stats` prints the table docs/EVALUATION.md and `evaluate.limit` quote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 10_000
# The disagreement rate the report assumes where it has no pair of models to observe one (and says
# so). A round figure between two checkpoints of one model (SFT and GRPO: at least 3 of 50 BFCL cases
# in docs/RESULTS.md's last default run) and a base model against a trained one (24 of 50 there).
ASSUMED_DISAGREEMENT = 0.2


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `correct / n` (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # The bounds at 0 and n are exactly 0 and 1 (the formula leaves ~1e-18 of rounding there).
    return (0.0 if correct <= 0 else max(0.0, centre - half)), (1.0 if correct >= n else min(1.0, centre + half))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value of paired outcomes (1.0 when the two never disagree)."""
    from scipy.stats import binomtest

    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


Strata = Mapping[str, tuple[Sequence[bool], Sequence[bool]]]  # category -> (model A's, model B's) outcomes


def paired_bootstrap(strata: Strata, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """(difference, low, high): A's minus B's accuracy (the unweighted mean over strata, each stratum a
    category whose cases both models answered) and its percentile interval, resampling the cases of
    each stratum with replacement, the same cases for both models."""
    import numpy as np

    diffs = [np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for a, b in strata.values() if len(a)]
    if not diffs:
        raise ValueError("no paired cases to compare")
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([d.mean() for d in diffs]))
    draws = np.mean([d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1) for d in diffs], axis=0)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    # A mean over strata of case means lands a bound that is 0 in exact arithmetic some 1e-18 off it, which
    # would call a difference whose interval touches 0; no real difference is that small (1 case in 10^6).
    return tuple(round(float(x), 12) + 0.0 for x in (estimate, low, high))


def min_detectable_difference(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest paired difference in accuracy that McNemar's test detects with this power on n
    cases, when the two models disagree on a share `discordance` of them (the normal approximation of
    Connor, 1987: n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2). None when they never disagree or
    when no difference up to `discordance` is detectable."""
    from scipy.stats import norm

    if n <= 0 or discordance <= 0:
        return None
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)

    def needed(d: float) -> float:
        return (za * math.sqrt(discordance) + zb * math.sqrt(max(discordance - d * d, 0.0))) ** 2 / (d * d)

    low, high = 1e-9, discordance  # a difference can't exceed the share of cases the models disagree on
    if needed(high) > n:
        return None
    for _ in range(100):  # needed() falls as d grows: bisect for needed(d) = n
        mid = (low + high) / 2
        low, high = (mid, high) if needed(mid) > n else (low, mid)
    return high


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm, 1979), in the input's order: the i-th smallest of m is
    multiplied by m - i (i from 0), kept at least as large as every smaller one's adjusted value, and capped
    at 1. Rejecting where the adjusted p is below alpha controls the family-wise error rate at alpha."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class PairedComparison:
    a: str
    b: str
    scope: str  # what is compared: "bfcl/overall", "bfcl/simple_python", ...
    n: int  # paired cases
    diff: float  # A's accuracy minus B's, as a fraction
    low: float
    high: float
    p_value: float  # McNemar's exact test over all paired cases of the scope
    only_a: int  # cases only A got right
    only_b: int
    # McNemar's p after Holm's adjustment over the report's family of like comparisons (`family` tests:
    # all overall scopes, or all category scopes); None until a report sets it (`adjust_for_multiplicity`).
    p_holm: float | None = None
    family: int = 1

    @property
    def detectable(self) -> float | None:
        """The smallest difference these n cases detect at 80 % power, at this pair's disagreement rate."""
        return min_detectable_difference(self.n, (self.only_a + self.only_b) / self.n if self.n else 0.0)

    @property
    def interval_excludes_0(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def mcnemar_agrees(self) -> bool:
        """McNemar's test is significant and points the interval's way. With categories of different sizes
        the interval is for the mean over categories and McNemar pools the cases, so the two can disagree in
        sign (6 cases only A got right in a small category, 20 only B in a large one)."""
        same_way = (self.only_a - self.only_b) * (self.low + self.high) > 0
        return self.p_value < ALPHA and same_way

    @property
    def called(self) -> bool:
        """A difference is called only when its interval excludes 0 and McNemar's exact test agrees."""
        return self.interval_excludes_0 and self.mcnemar_agrees

    @property
    def called_holm(self) -> bool:
        """Called, and still significant after Holm's adjustment over its family of comparisons."""
        return self.called and (self.p_holm if self.p_holm is not None else self.p_value) < ALPHA

    def _holm_words(self) -> str:
        if self.p_holm is None or self.family < 2:
            return ""
        words = f"; Holm-adjusted over the {self.family} comparisons of its kind: p = {self.p_holm:.3g}"
        if self.called:
            words += ", it stays significant" if self.called_holm else ", not significant after correction"
        return words

    def words(self) -> str:
        mdd = self.detectable
        power = (f"; at their disagreement rate these {self.n} cases detect {100 * mdd:.1f} points at 80 % power"
                 if mdd is not None else "")
        test = (f"McNemar p = {self.p_value:.3g}{self._holm_words()}; {self.only_a} cases only {self.a} got right, "
                f"{self.only_b} only {self.b}{power}")
        if not self.called:
            interval = f"95 % CI [{100 * self.low:+.1f}, {100 * self.high:+.1f}] points"
            if not self.interval_excludes_0:
                why = f"{interval} includes 0"
            elif self.p_value >= ALPHA:
                why = (f"{interval} excludes 0 but McNemar's exact test does not (p >= {ALPHA:g}): too few cases "
                       "where they disagree to call it")
            else:
                why = (f"{interval} excludes 0 but McNemar's exact test, over the pooled cases, points the other "
                       "way: the categories differ in size and disagree")
            return (f"{self.scope}: no difference shown between {self.a} and {self.b} ({self.a} minus {self.b}: "
                    f"{100 * self.diff:+.1f} points, {why}; {test}; n = {self.n}).")
        better, worse = (self.a, self.b) if self.diff > 0 else (self.b, self.a)
        low, high = (self.low, self.high) if self.diff > 0 else (-self.high, -self.low)
        return (f"{self.scope}: {better} is better than {worse} by {100 * abs(self.diff):.1f} points "
                f"(95 % CI [{100 * low:.1f}, {100 * high:.1f}]; {test}; n = {self.n}).")


def compare(a: str, b: str, scope: str, strata: Strata, seed: int = 0) -> PairedComparison:
    """Model A against model B on the paired cases of `strata` (category -> both models' outcomes)."""
    diff, low, high = paired_bootstrap(strata, seed=seed)
    all_a = [x for sa, _ in strata.values() for x in sa]
    all_b = [y for _, sb in strata.values() for y in sb]
    return PairedComparison(a, b, scope, len(all_a), diff, low, high, mcnemar_exact(all_a, all_b),
                            sum(x and not y for x, y in zip(all_a, all_b, strict=True)),
                            sum(y and not x for x, y in zip(all_a, all_b, strict=True)))


def adjust_for_multiplicity(pairs: Sequence[PairedComparison], overall: str) -> None:
    """Set each comparison's Holm-adjusted p over its family: the comparisons whose scope ends with
    `/<overall>` form one, every category comparison the other."""
    families = ([c for c in pairs if c.scope.endswith(f"/{overall}")],
                [c for c in pairs if not c.scope.endswith(f"/{overall}")])
    for family in families:
        for c, p in zip(family, holm([c.p_value for c in family]), strict=True):
            c.p_holm, c.family = p, len(family)


# ---------------------------------------------------------------- the power table


def power_table(sizes: Sequence[int], rates: Sequence[float]) -> str:
    """Markdown: the smallest difference (points) detectable at 80 % power, per number of paired cases
    (rows) and disagreement rate (columns); "-" where none is (too few cases for any difference up to
    the rate, which is the most two models can differ by)."""
    def cell(n: int, rate: float) -> str:
        mdd = min_detectable_difference(n, rate)
        return "-" if mdd is None else f"{100 * mdd:.1f}"

    lines = ["| paired cases | " + " | ".join(f"{100 * r:.0f} % disagree" for r in rates) + " |",
             "|---" * (len(rates) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(cell(n, r) for r in rates) + " |" for n in sizes]
    return "\n".join(lines)


if __name__ == "__main__":
    # Per category (10 .. 100 cases) and over BFCL's 5 default categories (50 .. 500, and all 1240).
    print(power_table([10, 20, 50, 100, 250, 500, 1240], [0.1, 0.2, 0.3, 0.4]))
