"""Uncertainty for the evaluation report: an interval for every accuracy, and for every pair of models
a paired difference with its interval and McNemar's exact test.

- One model's accuracy on n cases: the 95 % Wilson score interval (well behaved at 0 % and 100 % and
  for small n, where the normal approximation is not).
- Two models on the same cases: the difference of their accuracies, a 95 % percentile interval from
  a paired bootstrap over cases (the same resampled cases for both models; resampled within each
  category when the accuracy is a mean of categories, as BFCL's overall is), and McNemar's exact
  p-value (a binomial test on the cases where exactly one of the two is right).
- Where a category adds no variance to that bootstrap (every case differs the same way, as a category one
  model always gets right and the other never does, or none differs), the interval is widened to the
  score interval of the same difference: Newcombe's square-and-add interval per category (1998, method
  10), combined over categories by MOVER (Zou & Donner, 2008). The same failure Wilson's interval fixes
  for one model: a bootstrap of a category at 100 % against 0 % is 100 % on every resample.
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
- Methods across training seeds (`compare_arms`): a case-level paired test compares two checkpoints, not
  two training methods; two seeds of one method can differ more than two methods do. Each arm is a
  set of checkpoints trained alike but for the seed, evaluated on the same cases. The difference of the
  arms' mean scores gets Welch's t interval (the test Colas et al., 2018, recommend for comparing RL
  algorithms over seeds), its variance the seeds' (each arm's sample variance over its seeds) plus the
  cases' (a stratified sample of the benchmark), with Welch-Satterthwaite degrees of freedom.
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


def newcombe_paired(a: Sequence[bool], b: Sequence[bool], z: float = Z95) -> tuple[float, float, float]:
    """(difference, low, high): A's accuracy minus B's on the same cases, with Newcombe's square-and-add
    interval for paired proportions (Newcombe 1998, method 10; Fagerland, Lydersen & Laake, ch. 8): the two
    accuracies' Wilson intervals combined with the correlation of the pairs. Unlike a bootstrap it has width
    where every case differs the same way (A right on all, B on none) or none differs."""
    n = len(a)
    if n == 0:
        raise ValueError("no paired cases to compare")
    both = sum(x and y for x, y in zip(a, b, strict=True))
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    (l1, u1), (l2, u2) = wilson(both + only_a, n, z), wilson(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    # Newcombe's correlation estimate, with his continuity correction of a positive one
    phi = 0.0 if margins == 0 else (cross - n / 2 if cross > n / 2 else min(cross, 0)) / math.sqrt(margins)
    low = p1 - p2 - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    high = p1 - p2 + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return p1 - p2, max(-1.0, low), min(1.0, high)


def score_interval(strata: Strata) -> tuple[float, float, float]:
    """(difference, low, high) of the unweighted mean over strata of A's minus B's accuracy: each stratum's
    Newcombe interval (`newcombe_paired`), combined by MOVER (Zou & Donner 2008: the bounds' distances
    from each estimate added in quadrature, as variances of independent parts add)."""
    parts = [newcombe_paired(a, b) for a, b in strata.values() if len(a)]
    if not parts:
        raise ValueError("no paired cases to compare")
    k = len(parts)
    estimate = sum(d for d, _, _ in parts) / k
    low = estimate - math.sqrt(sum((d - lo) ** 2 for d, lo, _ in parts)) / k
    high = estimate + math.sqrt(sum((hi - d) ** 2 for d, _, hi in parts)) / k
    return estimate, low, high


def adds_no_variance(a: Sequence[bool], b: Sequence[bool]) -> bool:
    """Whether every case of a stratum differs the same way (or none differs): its bootstrap is a constant."""
    return len({int(x) - int(y) for x, y in zip(a, b, strict=True)}) <= 1


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


def survives_holm(c: PairedComparison | ArmComparison) -> bool:
    """Called, and still significant after Holm's adjustment over its family (its own p until one is set)."""
    return c.called and (c.p_holm if c.p_holm is not None else c.p_value) < ALPHA


def holm_words(c: PairedComparison | ArmComparison, kind: str) -> str:
    """A comparison's Holm-adjusted p in words, and whether its call survives the adjustment."""
    if c.p_holm is None or c.family < 2:
        return ""
    words = f"; Holm-adjusted over the {c.family} {kind} of its kind: p = {c.p_holm:.3g}"
    if c.called:
        words += ", it stays significant" if c.called_holm else ", not significant after correction"
    return words


BOOTSTRAP = "bootstrap"
WIDENED = "bootstrap, widened to Newcombe's score interval"


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
    interval: str = BOOTSTRAP  # how low and high were found (BOOTSTRAP or WIDENED)

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
        return survives_holm(self)

    def words(self) -> str:
        mdd = self.detectable
        power = (f"; at their disagreement rate these {self.n} cases detect {100 * mdd:.1f} points at 80 % power"
                 if mdd is not None else "")
        test = (f"McNemar p = {self.p_value:.3g}{holm_words(self, 'comparisons')}; {self.only_a} cases only {self.a} got right, "
                f"{self.only_b} only {self.b}{power}")
        if self.interval == WIDENED:  # say why an interval is wider than its bootstrap
            test += ("; the interval is Newcombe's score interval, as a category where every case differs the same "
                     "way (or none differs) adds no variance to a bootstrap")
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
    interval = BOOTSTRAP
    if any(adds_no_variance(sa, sb) for sa, sb in strata.values() if len(sa)):
        _, s_low, s_high = score_interval(strata)
        low, high, interval = min(low, round(s_low, 12)), max(high, round(s_high, 12)), WIDENED
    all_a = [x for sa, _ in strata.values() for x in sa]
    all_b = [y for _, sb in strata.values() for y in sb]
    return PairedComparison(a, b, scope, len(all_a), diff, low, high, mcnemar_exact(all_a, all_b),
                            sum(x and not y for x, y in zip(all_a, all_b, strict=True)),
                            sum(y and not x for x, y in zip(all_a, all_b, strict=True)), interval=interval)


def adjust_for_multiplicity(pairs: Sequence[PairedComparison | ArmComparison], overall: str) -> None:
    """Set each comparison's Holm-adjusted p over its family: the comparisons whose scope ends with
    `/<overall>` form one, every category comparison the other."""
    families = ([c for c in pairs if c.scope.endswith(f"/{overall}")],
                [c for c in pairs if not c.scope.endswith(f"/{overall}")])
    for family in families:
        for c, p in zip(family, holm([c.p_value for c in family]), strict=True):
            c.p_holm, c.family = p, len(family)


# ---------------------------------------------------------------- methods across training seeds


Scores = Mapping[str, Sequence[bool]]  # category -> one checkpoint's outcomes, in the order of every other's


def arm_scores(arm: Sequence[Scores]) -> list[float]:
    """Each checkpoint's score: the unweighted mean of its category accuracies."""
    return [sum(sum(o) / len(o) for o in cats.values()) / len(cats) for cats in arm]


@dataclass
class ArmComparison:
    """Arm A's mean score over its seeds minus arm B's, with Welch's t interval (`compare_arms`)."""

    a: str
    b: str
    scope: str
    scores_a: list[float]  # one per seed
    scores_b: list[float]
    cases: int  # the cases each checkpoint answered
    diff: float
    low: float
    high: float
    se_seeds: float  # the standard error's part from training seeds
    se_cases: float  # and from the sample of cases
    df: float
    p_value: float  # Welch's two-sided t test
    p_holm: float | None = None  # after Holm's adjustment over the report's like comparisons (as PairedComparison)
    family: int = 1

    @property
    def se(self) -> float:
        return math.hypot(self.se_seeds, self.se_cases)

    @property
    def called(self) -> bool:
        return self.p_value < ALPHA

    @property
    def called_holm(self) -> bool:
        """Called, and still significant after Holm's adjustment over its family of method comparisons."""
        return survives_holm(self)

    @property
    def detectable(self) -> float | None:
        """The smallest difference these seeds and cases detect at 80 % power (alpha 0.05), at this standard
        error: (t_0.975 + t_0.8) se on the same degrees of freedom."""
        from scipy.stats import t

        if not math.isfinite(self.df) or self.se == 0:
            return None
        return float((t.ppf(1 - ALPHA / 2, self.df) + t.ppf(0.8, self.df)) * self.se)

    def words(self) -> str:
        def arm(name: str, scores: list[float]) -> str:
            spread = f", seed SD {100 * stdev(scores):.1f}" if len(scores) > 1 else ", one checkpoint (held fixed)"
            return f"{name} {100 * sum(scores) / len(scores):.1f} over {len(scores)} seed{'s' * (len(scores) > 1)}{spread}"

        mdd = self.detectable
        detail = (f"{arm(self.a, self.scores_a)}; {arm(self.b, self.scores_b)}; Welch's t p = {self.p_value:.3g} on "
                  f"{self.df:.1f} degrees of freedom; standard error {100 * self.se_seeds:.1f} points from the seeds, "
                  f"{100 * self.se_cases:.1f} from the {self.cases} cases"
                  + (f"; these seeds and cases detect {100 * mdd:.1f} points at 80 % power" if mdd else "")
                  + holm_words(self, "method comparisons"))
        interval = f"95 % CI [{100 * self.low:+.1f}, {100 * self.high:+.1f}] points"
        if not self.called:
            return (f"{self.scope}: no difference shown between the methods {self.a} and {self.b} ({self.a} minus "
                    f"{self.b}: {100 * self.diff:+.1f} points, {interval} includes 0; {detail}).")
        better, worse = (self.a, self.b) if self.diff > 0 else (self.b, self.a)
        low, high = (self.low, self.high) if self.diff > 0 else (-self.high, -self.low)
        return (f"{self.scope}: the method {better} is better than {worse} by {100 * abs(self.diff):.1f} points "
                f"over seeds (95 % CI [{100 * low:.1f}, {100 * high:.1f}]; {detail}).")


def stdev(xs: Sequence[float]) -> float:
    """The sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def _category_case_variance(arm_a: Sequence[Sequence[bool]], arm_b: Sequence[Sequence[bool]]) -> float:
    """The variance over one category's cases of the arms' per-case difference that the seeds' part does not hold
    (so the variance of the category's mean difference that comes from which cases the benchmark sampled).

    d_i (A's mean outcome on case i minus B's) spreads over cases by how the methods' difference varies by case
    and by each checkpoint's own case-by-case noise; the seeds' part holds that noise already. Each case's spread
    over seeds (`noise`) estimates the noise plus the seed effect, which shifts every case of a checkpoint alike
    and so never shows in d's spread: taking the seeds' spread of the category's score (`seed`) back out leaves
    the noise alone, scaled by n / (n - 1) (method of moments). Where the moments have nothing to go on (every
    checkpoint of an arm answers each case alike, and the arms differ the same way on every case: both at 0 %,
    say) the width of Newcombe's paired score interval on those outcomes stands in, as `compare` widens a paired
    interval."""
    n = len(arm_a[0])
    d, noise = [], []
    for i in range(n):
        a_i, b_i = [float(m[i]) for m in arm_a], [float(m[i]) for m in arm_b]
        d.append(sum(a_i) / len(a_i) - sum(b_i) / len(b_i))
        noise.append(stdev(a_i) ** 2 / len(a_i) + stdev(b_i) ** 2 / len(b_i))
    if max(noise) == 0 and max(d) - min(d) < 1e-12:
        # every checkpoint of an arm answers each case alike, and the arms differ alike on every case
        _, low, high = newcombe_paired(arm_a[0], arm_b[0])
        return ((high - low) / (2 * Z95)) ** 2
    if n < 2:
        return 0.0
    seed = sum(stdev([sum(m) / n for m in arm]) ** 2 / len(arm) for arm in (arm_a, arm_b))
    return (stdev(d) ** 2 - n / (n - 1) * (sum(noise) / n - seed)) / n  # unbiased, so it can be below 0


def compare_arms(a: str, b: str, scope: str, arm_a: Sequence[Scores], arm_b: Sequence[Scores]) -> ArmComparison:
    """Method A against method B, each an arm of checkpoints trained alike but for the seed, every one
    evaluated on the same cases (the same categories, each in the same order).

    Welch's t on the checkpoints' scores (the unweighted mean over categories), with two variance parts:
    - the seeds': var(A's scores) / n_A + var(B's) / n_B. An arm of one checkpoint (an SFT that every GRPO
      seed starts from) adds none: the comparison is then conditional on that checkpoint;
    - the cases': the benchmark is a sample of cases too (`_category_case_variance`), averaged over categories
      as the score is.
    Degrees of freedom by Welch-Satterthwaite over the parts (a part's df: seeds - 1, or cases - categories).
    """
    from scipy.stats import t

    if not arm_a or not arm_b:
        raise ValueError(f"{scope}: each arm needs at least one checkpoint ({a}: {len(arm_a)}, {b}: {len(arm_b)})")
    if len(arm_a) < 2 and len(arm_b) < 2:
        raise ValueError(f"{scope}: {a} and {b} have one checkpoint each: that is a comparison of two checkpoints "
                         "(`compare`), not of two methods; train more seeds of one of them")
    categories = list(arm_a[0])
    for cats in (*arm_a, *arm_b):
        if list(cats) != categories or any(len(cats[c]) != len(arm_a[0][c]) for c in categories):
            raise ValueError(f"{scope}: every checkpoint of {a} and {b} must answer the same cases of the same "
                             f"categories ({categories}); evaluate them together")
    empty = [c for c in categories if not len(arm_a[0][c])]
    if empty or not categories:
        raise ValueError(f"{scope}: no cases to compare {a} and {b} on in {empty or 'any category'}; leave empty "
                         "categories out")
    scores_a, scores_b = arm_scores(arm_a), arm_scores(arm_b)
    # rounded as paired_bootstrap's: equal arms would otherwise differ by 1e-17 and read "-0.0"
    diff = round(sum(scores_a) / len(scores_a) - sum(scores_b) / len(scores_b), 12) + 0.0
    seeds = [(stdev(s) ** 2 / len(s), len(s) - 1) for s in (scores_a, scores_b) if len(s) > 1]
    k = len(categories)
    case_var = sum(max(0.0, _category_case_variance([m[c] for m in arm_a], [m[c] for m in arm_b]))
                   for c in categories) / k ** 2
    cases = sum(len(arm_a[0][c]) for c in categories)
    parts = seeds + ([(case_var, cases - k)] if cases > k else [])
    var = sum(v for v, _ in parts)
    if var == 0:  # neither the seeds nor the cases show any spread to test against: nothing is called
        df, low, high, p = math.inf, -1.0, 1.0, 1.0
    else:
        df = var ** 2 / sum(v ** 2 / f for v, f in parts if v > 0)
        half = float(t.ppf(1 - ALPHA / 2, df)) * math.sqrt(var)
        # a difference of accuracies lies in [-1, 1]; so does its interval
        low, high, p = max(-1.0, diff - half), min(1.0, diff + half), float(2 * t.sf(abs(diff) / math.sqrt(var), df))
    return ArmComparison(a, b, scope, scores_a, scores_b, cases, diff, low, high,
                         math.sqrt(sum(v for v, _ in seeds)), math.sqrt(case_var), df, p)


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
