"""No import cycle between the params schema and the reward library: each module imports first, in a
fresh interpreter, and works; config loads the variant registry without loading what reads config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["toolrl.config", "toolrl.schema.grpo", "toolrl.rewards", "toolrl.rewards.registry", "toolrl.rewards.scorer",
           "toolrl.rewards.trl", "toolrl.rewards.cli", "toolrl.rewards.multi_turn", "toolrl.evaluation.multi_turn",
           "toolrl.formats", "toolrl.tracking"]
# After the first import, the rest of the web, used: params validated against the registry, a score.
USE = """
import sys
from toolrl.config import Params, RewardParams
from toolrl.rewards import Scorer, score
from toolrl.rewards.trl import reward_functions
assert Params.model_validate({"grpo": {"reward": {"variant": "coarse"}}}).grpo.reward.variant == "coarse"
try:
    RewardParams(variant="no_such_variant")
except ValueError as exc:
    assert "no_such_variant" in str(exc)
else:
    raise AssertionError("an unknown variant passed")
gt = '<think> x </think>\\n<tool_call>\\n{"name": "f", "parameters": {"a": 1}}\\n</tool_call>'
assert score(gt, gt).total == Scorer("default")(gt, gt).total == 4.0
assert len(reward_functions(RewardParams())) == 2
"""


def _python(code: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    done = _python(f"import {module}\n{USE}")
    assert done.returncode == 0, done.stderr[-3000:]


def test_config_loads_the_registry_not_the_scorer():
    done = _python("import sys\nfrom toolrl.config import RewardParams\nRewardParams(variant='coarse')\n"
                   "print(sorted(m for m in sys.modules if m.startswith('toolrl.rewards')))")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["['toolrl.rewards',", "'toolrl.rewards.registry',", "'toolrl.rewards.schedules']"]


def test_the_reward_package_exports_what_it_lists():
    import toolrl.rewards as rewards

    assert sorted(rewards.__all__) == sorted(rewards._HOMES)
    for name in rewards.__all__:
        assert getattr(rewards, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rewards.nope  # noqa: B018
