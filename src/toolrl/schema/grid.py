"""params.yaml `grid`: the ToolRL paper's reward-variant grid, each variant a GRPO run beside the grpo stage's.

Each variant listed here is a DVC stage of its own (`grpo_variant@<name>`: dvc.yaml's `foreach` over the list),
trained exactly as `grpo` (same SFT, data, budget and seed) but for `grpo.reward.variant`, into
`<output_dir>/grpo_<name>`. The evaluate stage scores them beside the stage models, on the same cases, so every
variant gets a paired comparison with the default reward's GRPO. Empty (the default): no extra stages.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from toolrl.rewards.registry import get_variant  # imports no schema or config: no cycle
from toolrl.schema.base import Section

GRID_STAGE = "grpo"  # the stage each variant is a copy of


class GridParams(Section):
    variants: list[str] = Field(default_factory=list, description=(
        "Reward variants (`toolrl reward variants`) to train the grpo stage with besides its own "
        "grpo.reward.variant (stages grpo_variant@<name>), each from the same SFT with the same params and seed. "
        "The paper's grid: [coarse, equal_max, strict_match, dynamic_scale, two_stage, length] (configs/grid.yaml). "
        "Empty: none."))
    output_dir: str = Field(default="models/grid", description=(
        "Where the variants' models go (<output_dir>/grpo_<variant>). The evaluate stage depends on this folder, "
        "which must therefore exist even with no variants: the project ships models/grid/README.md for that; "
        "keep anything but models out of it."))
    reports_dir: str = Field(default="reports/grid", description=(
        "Where the variants' training metrics and reward curves go (<reports_dir>/grpo_<variant>.json, .csv, .png)."))

    @field_validator("variants")
    @classmethod
    def _known_and_distinct(cls, variants: list[str]) -> list[str]:
        for name in variants:
            get_variant(name)  # raises with the list of known names
        dupes = sorted({v for v in variants if variants.count(v) > 1})
        if dupes:
            raise ValueError(f"lists {', '.join(dupes)} more than once")
        return variants

    def folder(self, variant: str) -> str:
        """The model folder of one variant (dvc.yaml's foreach outs spell it the same)."""
        return f"{self.output_dir}/{GRID_STAGE}_{variant}"

    def stage_of(self, folder: str) -> str | None:
        """The DVC stage (`grpo_variant@coarse`) that writes `folder`, when it is one of the variants' folders."""
        for variant in self.variants:
            if folder == self.folder(variant):
                return f"{GRID_STAGE}_variant@{variant}"
        return None

    def overrides(self, variant: str) -> list[str]:
        """What makes a run of the grpo stage the variant `variant` (`python -m flows.grpo --variant <name>`,
        the command of dvc.yaml's grpo_variant stages): its reward, its outputs in the grid's folder, no
        registered model (the registry's aliases stay on the stage's own model), and no variants or seeds of
        its own (it is one)."""
        report = f"{self.reports_dir}/{GRID_STAGE}_{variant}"
        return [f"grpo.reward.variant={variant}", f"grpo.output_dir={self.folder(variant)}",
                f"grpo.metrics_file={report}.json", f"grpo.plots_file={report}.csv", "tracking.register_models=false",
                "grid.variants=[]", "seeds.grpo=[]", "seeds.grpo_trm=[]"]
