"""The report's statistics on constructed outcomes with known answers."""

from __future__ import annotations

import pytest

from toolrl.evaluation.stats import (
    BOOTSTRAP,
    WIDENED,
    compare,
    compare_arms,
    mcnemar_exact,
    newcombe_paired,
    paired_bootstrap,
    score_interval,
    wilson,
)


def test_wilson_matches_published_values():
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 50)[0] == 0.0 and wilson(50, 50)[1] == 1.0  # exact bounds, not 1e-18 off them


def test_mcnemar_exact_is_a_binomial_test_on_the_disagreements():
    a = [False] * 6 + [True] * 10
    b = [True] * 6 + [True] * 10
    assert mcnemar_exact(a, b) == pytest.approx(2 * 0.5**6)  # 0 vs 6 disagreements
    assert mcnemar_exact([True, False], [False, True]) == pytest.approx(1.0)
    assert mcnemar_exact([True, True], [True, True]) == 1.0


def test_identical_models_show_no_difference():
    outcomes = [True, False] * 20
    c = compare("sft", "grpo", "bfcl/overall", {"simple": (outcomes, outcomes)})
    assert c.diff == 0.0 and not c.called and "no difference shown" in c.words()
    # Agreeing on 40 of 40 cases says they differ on few, not on none: the bootstrap's [0, 0] is widened to
    # Newcombe's interval (+-4.7 points here), the report says so.
    assert c.interval == WIDENED and c.low == pytest.approx(-0.0468, abs=1e-4) and c.high == pytest.approx(0.0468, abs=1e-4)
    assert "Newcombe's score interval" in c.words()


def test_a_clear_difference_is_called_with_its_size():
    a = [True] * 30 + [False] * 10
    b = [True] * 10 + [False] * 30  # b's right answers are a's too
    c = compare("grpo", "sft", "bfcl/simple", {"simple": (a, b)})
    assert c.diff == pytest.approx(0.5) and 0 < c.low < 0.5 < c.high <= 1
    assert c.called and c.only_a == 20 and c.only_b == 0 and c.p_value < 1e-5
    assert c.words().startswith("bfcl/simple: grpo is better than sft by 50.0 points")
    reverse = compare("sft", "grpo", "bfcl/simple", {"simple": (b, a)})
    assert reverse.diff == pytest.approx(-0.5) and reverse.called
    assert reverse.words().startswith("bfcl/simple: grpo is better than sft by 50.0 points (95 % CI [")
    assert f"[{100 * -reverse.high:.1f}, {100 * -reverse.low:.1f}]" in reverse.words()  # in the better's favour


def test_an_interval_touching_0_calls_nothing_whatever_the_rounding():
    # a real pair (a GRPO checkpoint against the final model, 2026-11-30): the upper bound is 0 exactly, but
    # the mean over five categories once came out -2.8e-18 and the report called the difference
    cases = {"simple_python": ("0100100001000011000101100111010111010001", "0110100001010011000101100111110111010001"),
             "multiple": ("0101000100000000000000011000000000000010", "0101000100000000000010011000000000000010"),
             "parallel": ("0000000000000000000000000000000010000000", "0001000000100000000000000000000010000000"),
             "parallel_multiple": ("1" + "0" * 39, "1" + "0" * 39),
             "irrelevance": ("0" * 18 + "1" + "0" * 21, "0" * 40)}
    strata = {k: ([c == "1" for c in a], [c == "1" for c in b]) for k, (a, b) in cases.items()}
    assert paired_bootstrap(strata) == pytest.approx((-0.025, -0.05, 0.0)) and paired_bootstrap(strata)[2] == 0.0
    c = compare("checkpoint-50", "final", "bfcl/overall", strata)
    assert c.diff == pytest.approx(-0.025) and c.low < -0.05 and c.high > 0  # parallel_multiple: widened
    assert not c.called and "no difference shown" in c.words() and "includes 0" in c.words()


def test_one_case_of_twenty_is_noise():
    a = [True] * 11 + [False] * 9
    b = [True] * 10 + [False] * 10
    c = compare("grpo", "sft", "bfcl/simple", {"simple": (a, b)})
    assert c.diff == pytest.approx(0.05) and c.low <= 0 <= c.high and not c.called
    assert c.p_value == pytest.approx(1.0)


def test_a_handful_of_one_sided_disagreements_is_not_called_until_mcnemar_agrees():
    # The reward grid (docs/RESULTS.md): equal_max right on 4 cases the default's step 50 got wrong, never the
    # other way, out of 400. A resample misses all 4 with probability ~e^-4 < 2.5 %, so the percentile interval
    # excludes 0; McNemar's exact p is 2 * 0.5^4 = 0.125, and nothing is called.
    def pair(k: int) -> tuple[list[bool], list[bool]]:
        a = [True] * (40 + k) + [False] * (360 - k)
        return a, [True] * 40 + [False] * 360

    four = compare("equal_max", "plain", "bfcl/overall", {"simple": pair(4)})
    assert four.low > 0 and four.interval_excludes_0 and four.p_value == pytest.approx(0.125)
    assert not four.called
    assert "no difference shown" in four.words() and "excludes 0 but McNemar's exact test does not" in four.words()
    six = compare("equal_max", "plain", "bfcl/overall", {"simple": pair(6)})  # p = 2 * 0.5^6 = 0.031
    assert six.called and six.p_value == pytest.approx(0.03125)
    assert six.words().startswith("bfcl/overall: equal_max is better than plain by 1.5 points")


def test_the_overall_difference_is_the_mean_over_categories_resampled_within_each():
    # category x: a +100 points over 4 cases; category y: equal over 40 cases. Unweighted mean: +50.
    strata = {"x": ([True] * 4, [False] * 4), "y": ([True] * 20 + [False] * 20, [True] * 20 + [False] * 20)}
    diff, low, high = paired_bootstrap(strata, resamples=2000)
    assert diff == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no paired cases"):
        paired_bootstrap({"x": ([], [])})


def test_mcnemar_pointing_the_other_way_calls_nothing():
    # A small category where only A is right on all 6 cases, a large one where only B is right on 20 of 200:
    # the mean over categories favours A (+45 points), the pooled cases B (6 against 20, p < 0.05).
    t, f = True, False
    c = compare("A", "B", "bfcl/overall", {"x": ([t] * 6, [f] * 6),
                                           "y": ([f] * 20 + [t] * 50 + [f] * 130, [t] * 70 + [f] * 130)})
    assert c.interval_excludes_0 and c.low > 0 and c.p_value < 0.05 and c.only_b > c.only_a
    assert not c.called
    assert "points the other way" in c.words()
    # the same sizes with the small category's cases reversed: both agree on B, and it is called
    c = compare("A", "B", "bfcl/overall", {"x": ([f] * 6, [t] * 6),
                                           "y": ([f] * 20 + [t] * 50 + [f] * 130, [t] * 70 + [f] * 130)})
    assert c.called and c.diff < 0


def test_the_bootstrap_interval_covers_about_95_percent():
    """Coverage on simulated paired models with a known true difference (a quick frequentist check)."""
    import random

    rng = random.Random(1)
    covered, trials = 0, 200
    for _ in range(trials):
        a = [rng.random() < 0.6 for _ in range(60)]
        b = [rng.random() < 0.5 for _ in range(60)]
        _, low, high = paired_bootstrap({"c": (a, b)}, resamples=400, seed=rng.randrange(10**6))
        covered += low <= 0.1 <= high
    assert 0.88 <= covered / trials <= 0.99


def _paired(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    t, f = True, False
    return ([t] * (both + only_a) + [f] * (only_b + neither),
            [t] * both + [f] * only_a + [t] * only_b + [f] * neither)


def test_newcombes_paired_interval_matches_the_published_one():
    # Fagerland, Lydersen & Laake, ch. 8 (Cavo et al., 2012): 59 both, 6 only A, 16 only B, 80 neither;
    # R contingencytables::Newcombe_square_and_add_CI_paired_2x2 gives -0.0621 (-0.1186 to -0.0046).
    assert newcombe_paired(*_paired(59, 6, 16, 80)) == pytest.approx((-0.0621, -0.1186, -0.0046), abs=1e-4)
    # every case one way: A right on all 20, B on none: [0.77, 1.0], not a bootstrap's [1.0, 1.0]
    d, low, high = newcombe_paired(*_paired(0, 20, 0, 0))
    assert d == 1.0 and high == 1.0 and low == pytest.approx(1 - 2**0.5 * (1 - wilson(20, 20)[0]), abs=1e-9)
    with pytest.raises(ValueError, match="no paired cases"):
        newcombe_paired([], [])


def test_a_category_all_one_way_no_longer_makes_the_overall_interval_too_narrow():
    # The eighth default run (docs/RESULTS.md), base against GRPO on 20 cases a category: base right on every
    # irrelevance case and GRPO on none; GRPO alone right on 5 multiple and 8 simple_python cases; both wrong on
    # every parallel case. McNemar p = 0.30, but the bootstrap gave +1 to +13 points: irrelevance, at +100 on
    # every resample, added no variance. Widened by Newcombe's interval per category (MOVER), it includes 0.
    strata = {"irrelevance": _paired(0, 20, 0, 0), "multiple": _paired(0, 0, 5, 15), "parallel": _paired(0, 0, 0, 20),
              "parallel_multiple": _paired(0, 0, 0, 20), "simple_python": _paired(0, 0, 8, 12)}
    _, boot_low, _ = paired_bootstrap(strata)
    assert boot_low > 0
    c = compare("base", "grpo", "bfcl/overall", strata)
    assert c.diff == pytest.approx(0.07) and c.low < 0 < c.high and c.interval == WIDENED and not c.called
    assert c.p_value == pytest.approx(0.2962, abs=1e-4)
    assert score_interval(strata) == pytest.approx((0.07, c.low, c.high))
    # a category with cases both ways keeps the bootstrap alone
    mixed = compare("a", "b", "bfcl/simple", {"simple": _paired(10, 8, 2, 20)})
    assert mixed.interval == BOOTSTRAP and (mixed.low, mixed.high) == pytest.approx(
        paired_bootstrap({"simple": _paired(10, 8, 2, 20)})[1:])


def test_the_widened_interval_covers_where_categories_are_all_one_way():
    """Coverage of the score interval on simulated pairs where one category is nearly always all one way."""
    import random

    rng = random.Random(3)
    covered, trials, truth = 0, 300, (0.97 - 0.03 + 0.5 - 0.4) / 2
    for _ in range(trials):
        x = ([rng.random() < 0.97 for _ in range(20)], [rng.random() < 0.03 for _ in range(20)])
        y = ([rng.random() < 0.5 for _ in range(20)], [rng.random() < 0.4 for _ in range(20)])
        _, low, high = score_interval({"x": x, "y": y})
        covered += low <= truth <= high
    assert covered / trials >= 0.92


def _arm(*checkpoints: str) -> list[dict[str, list[bool]]]:
    return [{"simple": [c == "1" for c in outcomes]} for outcomes in checkpoints]


def test_methods_over_seeds_get_welchs_t():
    from scipy.stats import ttest_1samp, ttest_ind

    # Each arm's mean outcome is the same on every case (2/3 and 1/3), so the cases add no variance and the
    # comparison is Welch's t test on the seeds' scores: [.5, .5, 1] against [.25, .25, .5].
    a = _arm("1100", "0011", "1111")
    b = _arm("1000", "0100", "0011")
    c = compare_arms("grpo", "sft", "bfcl/simple", a, b)
    welch = ttest_ind([0.5, 0.5, 1.0], [0.25, 0.25, 0.5], equal_var=False)
    assert c.diff == pytest.approx(1 / 3) and c.se_cases == 0 and c.p_value == pytest.approx(welch.pvalue)
    assert c.df == pytest.approx(welch.df) and c.low < 0 < c.high and not c.called
    assert c.words().startswith("bfcl/simple: no difference shown between the methods grpo and sft")
    # an arm of one checkpoint is held fixed: a one-sample t test of the other arm's seeds against it
    fixed = compare_arms("grpo", "sft", "bfcl/simple", a, _arm("1111"))
    assert fixed.p_value == pytest.approx(ttest_1samp([0.5, 0.5, 1.0], 1.0).pvalue)
    assert "one checkpoint (held fixed)" in fixed.words()
    with pytest.raises(ValueError, match="one checkpoint each"):
        compare_arms("grpo", "sft", "bfcl/simple", a[:1], b[:1])
    with pytest.raises(ValueError, match="same cases"):
        compare_arms("grpo", "sft", "bfcl/simple", a, _arm("100", "010"))


def test_methods_over_seeds_call_a_real_difference_and_few_false_ones():
    """Simulated methods: cases of varied difficulty, each seed a shift of every case's chance. Two arms of one
    method are called at about the test's 5 %; a method 15 points better with a seed SD of ~3 points is called
    nearly always with 5 seeds a side."""
    import random

    rng = random.Random(7)
    difficulty = [rng.random() for _ in range(80)]

    def method(shift: float, seeds: int) -> list[dict[str, list[bool]]]:
        out = []
        for _ in range(seeds):
            s = shift + rng.gauss(0, 0.03)
            out.append({c: [rng.random() < min(1.0, max(0.0, p + s)) for p in difficulty[i::2]]
                        for i, c in enumerate(("x", "y"))})
        return out

    false = sum(compare_arms("a", "b", "bfcl/overall", method(0, 5), method(0, 5)).called for _ in range(200))
    assert false / 200 <= 0.09
    real = sum(compare_arms("a", "b", "bfcl/overall", method(0.15, 5), method(0, 5)).called for _ in range(50))
    assert real / 50 >= 0.9


def test_the_cases_variance_part_is_unbiased_when_seeds_shift_every_case():
    """A seed shifts every case of its checkpoint alike: it shows in each case's spread over seeds but never in
    the spread of the arms' per-case difference, so the estimate takes the seeds' spread of the score back out.
    Without that it ran ~17 % low here (it subtracted the seed variance twice); the mean of 1,000 estimates is
    within 8 % (about 2.5 standard errors) of the variance the cases' true differences have."""
    import random

    from toolrl.evaluation.stats import _category_case_variance, stdev

    rng = random.Random(3)
    n = 40
    qa = [0.3 + 0.4 * rng.random() for _ in range(n)]
    qb = [a - rng.uniform(-0.25, 0.25) for a in qa]
    truth = stdev([a - b for a, b in zip(qa, qb, strict=True)]) ** 2 / n

    def arm(chances: list[float]) -> list[list[bool]]:
        out = []
        for _ in range(5):
            shift = rng.gauss(0, 0.1)
            out.append([rng.random() < min(1.0, max(0.0, p + shift)) for p in chances])
        return out

    estimates = [_category_case_variance(arm(qa), arm(qb)) for _ in range(1000)]
    assert sum(estimates) / len(estimates) == pytest.approx(truth, rel=0.08)


def test_methods_that_answer_every_case_alike_get_a_score_interval_not_a_zero_one():
    """Where every checkpoint answers each case alike and the arms differ alike on every case, the seeds and the
    moments have nothing to go on: the case part is Newcombe's paired score interval's, never a zero-width
    interval with p = 0."""
    from toolrl.evaluation.stats import newcombe_paired

    both_wrong = compare_arms("a", "b", "bfcl/parallel", [{"x": [False] * 40}] * 3, [{"x": [False] * 40}] * 2)
    _, low, high = newcombe_paired([False] * 40, [False] * 40)
    assert both_wrong.diff == 0 and both_wrong.p_value == 1 and not both_wrong.called
    assert both_wrong.se_cases == pytest.approx((high - low) / (2 * 1.959964), rel=1e-4) and both_wrong.df == 39
    assert both_wrong.low == pytest.approx(-both_wrong.high) and both_wrong.high > 0.08
    apart = compare_arms("a", "b", "bfcl/simple", [{"x": [True] * 4}] * 3, [{"x": [False] * 4}] * 2)
    assert apart.diff == 1 and apart.high == 1 and 0.3 < apart.low < 0.6 and apart.p_value > 0.001
    # two cases, seeds that score alike, and a difference the same on both: no spread at all, nothing called
    flat = compare_arms("a", "b", "bfcl/simple", [{"x": [True, False]}, {"x": [False, True]}], [{"x": [False, False]}])
    assert (flat.low, flat.high, flat.p_value, flat.called) == (-1.0, 1.0, 1.0, False)
    with pytest.raises(ValueError, match="no cases to compare"):
        compare_arms("a", "b", "bfcl/simple", [{"x": []}] * 2, [{"x": []}])


def test_a_methods_call_that_holm_undoes_says_so():
    from toolrl.evaluation.stats import adjust_for_multiplicity

    a = _arm("1111", "1110", "1111")
    b = _arm("0000", "0001", "0000")
    pairs = [compare_arms("a", "b", "bfcl/overall", a, b), compare_arms("a", "c", "bfcl/overall", a, a)]
    pairs[0].p_value = 0.04  # as if close to the line: Holm over 2 doubles it
    adjust_for_multiplicity(pairs, "overall")
    assert pairs[0].called and not pairs[0].called_holm and pairs[0].p_holm == pytest.approx(0.08)
    assert "Holm-adjusted over the 2 method comparisons of its kind: p = 0.08, not significant after correction" in (
        pairs[0].words())


def _results(outcomes: dict[str, list[bool]]):
    """EvalResults of models answering the same 40 simple_python cases as given."""
    from pathlib import Path

    from toolrl.evaluation.records import BenchmarkCase, Grade
    from toolrl.evaluation.references import ResolvedModel
    from toolrl.evaluation.runner import EvalResults, Graded, ModelResult

    col = ("bfcl", "simple_python")
    models = []
    for label, row in outcomes.items():
        m = ModelResult(ResolvedModel(label, Path("."), "h", "test"))
        m.graded[col] = [Graded(BenchmarkCase(f"c{i}", "bfcl", "simple_python", [], None),
                                Grade(f"c{i}", ok, None if ok else "wrong_value"), "") for i, ok in enumerate(row)]
        models.append(m)
    return EvalResults([col], {col: 40}, models, [])


def test_the_report_gives_intervals_and_words_each_difference(tmp_path):
    import csv

    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report
    from toolrl.evaluation.stage import mlflow_metrics

    results = _results({"sft": [True] * 10 + [False] * 30, "grpo": [True] * 30 + [False] * 10,
                        "grpo_trm": [True] * 31 + [False] * 9})
    files = report.write(results, EvaluateParams(output_dir=str(tmp_path), models=["sft"]))
    md = files["markdown"].read_text()
    assert "bfcl/overall: grpo is better than sft by 50.0 points" in md
    assert "bfcl/overall: no difference shown between grpo and grpo_trm" in md
    assert "on its own: 3 overall comparisons here, 6 with the categories" in md
    assert "2 of the 2 overall calls survive it" in md  # 50 points on 40 cases: p ~ 1e-6, x3 is nothing
    pairs = list(csv.DictReader(files["pairs"].open()))
    assert {(p["model_a"], p["model_b"], p["scope"], p["called"]) for p in pairs} >= {
        ("sft", "grpo", "bfcl/overall", "True"), ("grpo", "grpo_trm", "bfcl/simple_python", "False")}
    rows = {(r["model"], r["scope"]): r for r in csv.DictReader(files["intervals"].open())}
    sft = rows[("sft", "bfcl/simple_python")]
    assert (float(sft["low"]), float(sft["high"])) == pytest.approx(wilson(10, 40), abs=1e-4)
    metrics = mlflow_metrics(results)
    assert metrics["diff/sft_vs_grpo/bfcl/overall"] == pytest.approx(-0.5)
    assert metrics["diff/sft_vs_grpo/bfcl/overall_ci95_high"] < 0
    assert metrics["sft/bfcl/simple_python_ci95_low"] == pytest.approx(wilson(10, 40)[0])


def test_holm_matches_published_adjusted_p_values():
    from toolrl.evaluation.stats import holm

    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, and never below a smaller p's adjusted value
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_a_call_that_does_not_survive_holms_correction_is_marked(tmp_path):
    import csv

    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report
    from toolrl.evaluation.stage import mlflow_metrics

    # a is right on 6 cases where b and c are wrong, never the reverse: McNemar p = 2 / 2^6 = 0.031, called
    # on its own; over the 3 overall comparisons Holm gives 3 x 0.031 = 0.094 for both of a's pairs.
    b = [True] * 10 + [False] * 30
    results = _results({"a": [True] * 16 + [False] * 24, "b": b, "c": list(b)})
    files = report.write(results, EvaluateParams(output_dir=str(tmp_path), models=["a"]))
    pairs = {(p["model_a"], p["model_b"], p["scope"]): p for p in csv.DictReader(files["pairs"].open())}
    ab = pairs[("a", "b", "bfcl/overall")]
    assert float(ab["mcnemar_p"]) == pytest.approx(0.03125)
    assert (ab["called"], ab["called_holm"], ab["holm_family"]) == ("True", "False", "3")
    assert float(ab["mcnemar_p_holm"]) == pytest.approx(0.09375)
    assert pairs[("b", "c", "bfcl/overall")]["mcnemar_p_holm"] == "1"
    md = files["markdown"].read_text()
    assert "0 of the 2 overall calls survive it" in md
    assert "Holm-adjusted over the 3 comparisons of its kind: p = 0.0938, not significant after correction" in md
    assert mlflow_metrics(results)["diff/a_vs_b/bfcl/overall_mcnemar_p_holm"] == pytest.approx(0.09375)

    same = report.write(_results({"b": b, "c": list(b)}), EvaluateParams(output_dir=str(tmp_path / "same"),
                                                                         models=["b"]))
    assert "no overall difference is called here, so none is left to survive it" in same["markdown"].read_text()


def test_a_model_wrong_on_every_case_gets_wilsons_interval_not_zero_width(tmp_path):
    import csv

    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report

    results = _results({"base": [False] * 40, "sft": [True] * 10 + [False] * 30})
    files = report.write(results, EvaluateParams(output_dir=str(tmp_path), models=["base"]))
    rows = {(r["model"], r["scope"]): r for r in csv.DictReader(files["intervals"].open())}
    base = rows[("base", "bfcl/overall")]
    assert float(base["low"]) == 0.0 and float(base["high"]) == pytest.approx(wilson(0, 40)[1], abs=1e-4)
    assert "widened" in base["method"]
    sft = rows[("sft", "bfcl/overall")]  # a category between 0 and 100 %: the bootstrap alone
    assert sft["method"] == "bootstrap within categories" and float(sft["low"]) > 0


def test_the_detectable_difference_matches_the_sample_size_formula():
    from toolrl.evaluation.stats import min_detectable_difference

    # Connor's formula at psi = 0.3, d = 0.1: n = (1.96 sqrt(.3) + 0.8416 sqrt(.29))^2 / .01 = 235.4
    assert min_detectable_difference(236, 0.3) == pytest.approx(0.1, abs=2e-3)
    assert min_detectable_difference(1000, 0.3) < min_detectable_difference(100, 0.3)  # more cases, finer
    assert min_detectable_difference(100, 0.0) is None  # models that never disagree
    assert min_detectable_difference(3, 0.1) is None  # too few cases to detect anything


def _power_section(md: str) -> str:
    return md.split("## Uncertainty")[1].split("\n## ")[0]


def test_the_report_says_how_small_a_difference_its_cases_detect(tmp_path):
    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report
    from toolrl.evaluation.stage import mlflow_metrics

    # sft and grpo disagree on 20 of the 40 cases (50 %), grpo and grpo_trm on 2 (5 %).
    results = _results({"sft": [True] * 10 + [False] * 30, "grpo": [True] * 30 + [False] * 10,
                        "grpo_trm": [True] * 30 + [False] * 8 + [True] * 2})
    power = _power_section(report.write(results, EvaluateParams(output_dir=str(tmp_path)))["markdown"].read_text())
    line = next(x for x in power.splitlines() if x.startswith("- bfcl:"))
    assert line.startswith("- bfcl: 40 cases per category, 40 in all. The smallest paired difference detectable "
                           "at 80 % power (McNemar, two-sided alpha 0.05) over the 40 cases: at the disagreement "
                           "rate observed, ")
    # Connor's approximation at n = 40: 30.4 points at 50 % disagreement, 19.2 at 20 %, none at 5 %.
    assert "sft vs grpo (disagree on 50 %): 30.4 points" in line
    assert "grpo vs grpo_trm (disagree on 5 %): none (too few cases at this rate)" in line
    assert "sft vs grpo_trm" in line
    assert line.endswith("at an assumed 20 % disagreement rate (assumed, not observed), 19.2 points, and within "
                         "one category of 40 cases 19.2 points.")
    metrics = mlflow_metrics(results)
    assert metrics["power/bfcl/mdd80_at_20pct_disagreement"] == pytest.approx(0.1923, abs=1e-4)
    assert metrics["diff/sft_vs_grpo/bfcl/overall_mdd80"] == pytest.approx(0.3041, abs=1e-4)
    assert "diff/grpo_vs_grpo_trm/bfcl/overall_mdd80" not in metrics  # none detectable: no number to log


def test_with_one_model_the_power_line_states_its_assumed_disagreement(tmp_path):
    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report

    results = _results({"sft": [True] * 10 + [False] * 30, "copy": [True] * 10 + [False] * 30})
    results.models = results.models[:1]
    power = _power_section(report.write(results, EvaluateParams(output_dir=str(tmp_path)))["markdown"].read_text())
    assert ("- bfcl: 40 cases per category, 40 in all. The smallest paired difference detectable at 80 % power "
            "(McNemar, two-sided alpha 0.05) over the 40 cases: no pair of models to observe a disagreement rate; "
            "at an assumed 20 % disagreement rate (assumed, not observed), 19.2 points") in power

    same = _results({"a": [True] * 20 + [False] * 20, "b": [True] * 20 + [False] * 20})
    power = _power_section(report.write(same, EvaluateParams(output_dir=str(tmp_path)))["markdown"].read_text())
    assert "a vs b (disagree on 0 %): none (they never disagree)" in power


def test_a_category_without_cases_gets_no_bar_and_no_place_in_the_power_line(tmp_path):
    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report
    from toolrl.evaluation.runner import EvalResults

    full = _results({"sft": [True] * 10 + [False] * 30, "grpo": [True] * 30 + [False] * 10})
    empty = ("bfcl", "multiple")  # e.g. an API-Bank level file with no readable record
    results = EvalResults(full.columns + [empty], {**full.sizes, empty: 0}, full.models, [])
    files = report.write(results, EvaluateParams(output_dir=str(tmp_path), models=["sft"]))
    md = files["markdown"].read_text()
    assert "bfcl: 40 cases per category, 40 in all" in md and "category of 0 cases" not in md
    plots = {p.name for p in (tmp_path / "eval_plots").iterdir()}
    assert "eval_bfcl_simple_python.png" in plots and "eval_bfcl_multiple.png" not in plots


def test_the_report_compares_methods_over_their_seeds(tmp_path):
    import csv

    from toolrl.config import EvaluateParams
    from toolrl.evaluation import report
    from toolrl.evaluation.stage import mlflow_metrics

    # Three GRPO seeds at 50, 55 and 60 % of 40 cases, two TRM seeds at 70 and 75 %, one SFT at 25 %.
    def right(k: int) -> list[bool]:
        return [True] * k + [False] * (40 - k)

    models = {"sft": right(10), "g0": right(20), "g1": right(22), "g2": right(24), "t0": right(28), "t1": right(30)}
    ev = EvaluateParams(output_dir=str(tmp_path), models=[*models, "t2"],
                        arms={"sft": ["sft"], "grpo": ["g0", "g1", "g2"], "grpo_trm": ["t0", "t1", "t2"]})
    results = _results(models)  # t2 was not evaluated (a stage that had not run)
    computed = report.uncertainty(results, ev.arms)
    files = report.write(results, ev, computed=computed)
    md = files["markdown"].read_text()
    assert "## Methods across training seeds" in md and "| grpo | bfcl | 3 | 55.0 | 5.0 | g0 50.0, g1 55.0, g2 60.0 |" in md
    assert "| sft | bfcl | 1 | 25.0 | - |" in md
    assert "arm grpo_trm: t2 not evaluated (see the warnings), so 2 of its 3 checkpoints are compared" in md
    assert "bfcl/overall: the method grpo is better than sft by 30.0 points over seeds" in md
    assert "sft 25.0 over 1 seed, one checkpoint (held fixed); grpo 55.0 over 3 seeds, seed SD 5.0" in md
    assert "eval_plots/eval_arms.png" in md and (tmp_path / "eval_plots" / "eval_arms.png").is_file()
    rows = {(r["arm_a"], r["arm_b"], r["scope"]): r for r in csv.DictReader(files["arms"].open())}
    row = rows[("grpo", "grpo_trm", "bfcl/overall")]
    assert (row["seeds_a"], row["seeds_b"], row["cases"]) == ("3", "2", "40")
    assert row["holm_family"] == "3" and float(row["welch_p_holm"]) >= float(row["welch_p"])
    assert float(row["diff"]) == pytest.approx(0.55 - 0.725) and float(row["low"]) < float(row["diff"]) < float(row["high"])
    assert ("sft", "grpo", "bfcl/simple_python") in rows
    metrics = mlflow_metrics(results, computed)
    assert metrics["arm/grpo/bfcl/overall_mean"] == pytest.approx(0.55) and metrics["arm/grpo/bfcl/overall_sd"] == pytest.approx(0.05)
    assert metrics["arm_diff/sft_vs_grpo/bfcl/overall"] == pytest.approx(-0.3)
    assert metrics["arm_diff/sft_vs_grpo/bfcl/overall_welch_p"] < 0.05
    assert metrics["arm_diff/sft_vs_grpo/bfcl/overall_welch_p_holm"] >= metrics["arm_diff/sft_vs_grpo/bfcl/overall_welch_p"]
    assert "overall calls survive Holm's adjustment over them" in md
    for r in rows.values():  # a call that survives Holm: called, and its adjusted p-value below 0.05
        assert r["called_holm"] == str(r["called"] == "True" and float(r["welch_p_holm"]) < 0.05)
    assert rows[("sft", "grpo", "bfcl/overall")]["called_holm"] == "True"
    # the same folder without arms: the old methods' rows go with them (the header stays: a DVC output)
    report.write(results, EvaluateParams(output_dir=str(tmp_path), models=["sft"]))
    lines = (tmp_path / "eval_arms.csv").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arm_a,arm_b,scope,")


def test_arms_must_name_evaluated_models_once():
    from pydantic import ValidationError

    from toolrl.config import EvaluateParams

    with pytest.raises(ValidationError, match="arms.grpo lists g9, which is not in evaluate.models"):
        EvaluateParams(models=["g0"], arms={"grpo": ["g0", "g9"]})
    with pytest.raises(ValidationError, match="g0 is in both grpo and trm"):
        EvaluateParams(models=["g0", "g1"], arms={"grpo": ["g0"], "trm": ["g0", "g1"]})
    with pytest.raises(ValidationError, match="arms.grpo is empty"):
        EvaluateParams(models=["g0"], arms={"grpo": []})


def test_the_cli_reads_arms_and_refuses_a_malformed_one():
    from toolrl.cli import UserError
    from toolrl.evaluation.cli import _arms

    assert _arms("grpo=models/g0, models/g1;sft=models/sft;") == {"grpo": ["models/g0", "models/g1"],
                                                                   "sft": ["models/sft"]}
    with pytest.raises(UserError, match="is not NAME=MODEL,MODEL"):
        _arms("grpo:models/g0")
    with pytest.raises(UserError, match="the arm 'grpo' is named twice"):
        _arms("grpo=models/g0;grpo=models/g1")
