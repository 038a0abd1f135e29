"""The evaluated cases: a sample per category, fixed by a seed, nested across limits, all with `limit: null`."""

from __future__ import annotations

import json
import random

import pytest

from toolrl.config import Params
from toolrl.evaluation import api_bank, bfcl
from toolrl.evaluation.runner import load_benchmarks
from toolrl.evaluation.sampling import draw

IDS = [f"case_{i}" for i in range(200)]


def ids(cases):
    return [c.id for c in cases]


def pick(cases, limit, seed):
    return draw(cases, limit, seed, lambda case_id: case_id)


def test_the_sample_depends_only_on_the_seed_and_the_ids():
    sample = pick(IDS, 20, seed=0)
    assert len(sample) == 20 == len(set(sample)) and set(sample) <= set(IDS)
    assert pick(IDS, 20, seed=0) == sample
    shuffled = IDS[:]
    random.Random(3).shuffle(shuffled)
    assert pick(shuffled, 20, seed=0) == sample  # the order the data arrives in does not matter
    assert sample != IDS[:20]  # not the first ids


def test_another_seed_draws_other_cases():
    samples = [set(pick(IDS, 20, seed)) for seed in (0, 1, 2)]
    assert samples[0] != samples[1] and samples[1] != samples[2] and samples[0] != samples[2]


def test_the_sample_is_nested_across_limits():
    for seed in (0, 7):
        everything = pick(IDS, None, seed)
        for small, large in [(1, 10), (10, 20), (20, 200)]:
            assert pick(IDS, large, seed)[:small] == pick(IDS, small, seed)  # the first N of any larger sample
        assert pick(IDS, 50, seed) == everything[:50]


def test_no_limit_or_a_limit_past_the_size_takes_every_case():
    assert sorted(pick(IDS, None, 0)) == sorted(IDS)
    assert sorted(pick(IDS, 500, 0)) == sorted(IDS)
    assert pick([], 5, 0) == []


# ---------------------------------------------------------------- the benchmarks


def test_bfcl_categories_are_sampled_with_the_seed():
    ten, twenty = ids(bfcl.load_category("simple_python", 10)), ids(bfcl.load_category("simple_python", 20))
    assert twenty[:10] == ten and len(set(twenty)) == 20
    assert ten != [f"simple_python_{i}" for i in range(10)]
    assert ids(bfcl.load_category("simple_python", 10, seed=0)) == ten
    assert set(ids(bfcl.load_category("simple_python", 10, seed=1))) != set(ten)
    assert sorted(ids(bfcl.load_category("simple_python", None)), key=lambda i: int(i.rsplit("_", 1)[1])) == \
        [f"simple_python_{i}" for i in range(400)]


def evaluate_params(**evaluate):
    return Params.model_validate({"evaluate": {"benchmarks": ["bfcl"], **evaluate}})


def test_every_category_gets_its_own_sample(tmp_path):
    """Each category is a stratum: min(limit, its size) cases, whatever the other categories hold."""
    categories = ["simple_python", "irrelevance", "live_parallel"]  # 400, 240 and 16 cases
    cases, _ = load_benchmarks(evaluate_params(bfcl_categories=categories, limit=20, seed=5))
    assert {col: len(v) for col, v in cases.items()} == {
        ("bfcl", "simple_python"): 20, ("bfcl", "irrelevance"): 20, ("bfcl", "live_parallel"): 16}
    assert all(ex.category == col[1] for col, examples in cases.items() for ex in examples)
    alone, _ = load_benchmarks(evaluate_params(bfcl_categories=["irrelevance"], limit=20, seed=5))
    assert ids(alone[("bfcl", "irrelevance")]) == ids(cases[("bfcl", "irrelevance")])
    other_seed, _ = load_benchmarks(evaluate_params(bfcl_categories=categories, limit=20, seed=6))
    assert set(ids(other_seed[("bfcl", "simple_python")])) != set(ids(cases[("bfcl", "simple_python")]))


def test_limit_null_evaluates_every_case():
    cases, _ = load_benchmarks(evaluate_params(bfcl_categories=["multiple", "irrelevance"], limit=None))
    assert {col: len(v) for col, v in cases.items()} == {("bfcl", "multiple"): 200, ("bfcl", "irrelevance"): 240}
    own, _ = load_benchmarks(evaluate_params(bfcl_categories=["multiple"], limit=3, limit_per_benchmark={"bfcl": None}))
    assert len(own[("bfcl", "multiple")]) == 200


@pytest.fixture
def level_file(tmp_path):
    records = [{"system": "tools", "user": f"<user> request {i} </user>",
                "answer": f"{{'name': 'Tool{i}', 'parameters': {{}}}}"} for i in range(30)]
    records[4] = {"system": "tools", "answer": "{'name': 'X', 'parameters': {}}"}  # no user: unreadable
    records[25] = {"system": "tools", "user": "u", "answer": "{'name': "}  # cut short: unreadable
    path = tmp_path / "level-3-api_processed.json"
    path.write_text(json.dumps(records))
    return path


def test_api_bank_levels_are_sampled_from_their_readable_records(level_file):
    five, ten = api_bank.load_level(level_file, 5), api_bank.load_level(level_file, 10)
    assert ids(ten.examples)[:5] == ids(five.examples) and len(set(ids(ten.examples))) == 10
    assert ids(api_bank.load_level(level_file, 5).examples) == ids(five.examples)
    assert set(ids(api_bank.load_level(level_file, 5, seed=1).examples)) != set(ids(five.examples))
    everything = api_bank.load_level(level_file, None)
    assert sorted(ids(everything.examples)) == sorted(f"level_3_{i}" for i in range(30) if i not in (4, 25))
    assert ids(everything.examples)[:10] == ids(ten.examples)
    # Any record could have been drawn, so every unreadable one is reported, whatever the limit.
    assert [p.split(":")[0] for p in five.problems] == [p.split(":")[0] for p in everything.problems] == [
        "level-3-api_processed.json record 4", "level-3-api_processed.json record 25"]
