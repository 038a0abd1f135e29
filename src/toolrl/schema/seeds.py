"""params.yaml `seeds`: more training seeds of the GRPO stages, for comparing methods rather than checkpoints.

Each seed listed here is a DVC stage of its own (`grpo_seed@<s>`, `grpo_trm_seed@<s>`: dvc.yaml's `foreach`
over these lists), trained exactly as `grpo` / `grpo_trm` but for `grpo.seed`, into
`<output_dir>/<stage>_s<seed>`. The evaluate stage then scores them beside the stage models and compares
the methods over seeds (`evaluate.arms`, filled in by `seed_arms` unless set by hand; docs/EVALUATION.md,
"Methods across seeds"). Empty lists (the default): no extra stages, nothing changes.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from toolrl.schema.base import Section

SEEDED_STAGES = ("grpo", "grpo_trm")
_SECTION = {"grpo": "grpo", "grpo_trm": "trm.grpo"}  # the params section that names each stage's outputs


class SeedsParams(Section):
    grpo: list[int] = Field(default_factory=list, description=(
        "Extra values of grpo.seed to train the grpo stage with (stages grpo_seed@<s>), each from the same SFT "
        "and with the same params. The grpo stage's own model is the seed grpo.seed, so the arm has one more "
        "checkpoint than listed here. With five seeds a method, a method difference had an interval of about "
        "+-2.5 BFCL points here (docs/RESULTS.md, Five training seeds per method). Empty: none."))
    grpo_trm: list[int] = Field(default_factory=list, description=(
        "The same for the grpo_trm stage (stages grpo_trm_seed@<s>), from the same SFT and the same TRM. Empty: none."))
    output_dir: str = Field(default="models/seeds", description=(
        "Where the seeds' models go (<output_dir>/grpo_s<s>, <output_dir>/grpo_trm_s<s>). The evaluate stage "
        "depends on this folder, which must therefore exist even with no seeds: the project ships "
        "models/seeds/README.md for that; keep anything but models out of it."))
    reports_dir: str = Field(default="reports/seeds", description=(
        "Where the seeds' training metrics and reward curves go (<reports_dir>/<stage>_s<s>.json, .csv, .png)."))

    @field_validator("grpo", "grpo_trm")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        dupes = sorted({s for s in seeds if seeds.count(s) > 1})
        if dupes:
            raise ValueError(f"lists seed {', '.join(map(str, dupes))} more than once")
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be 0 or more")
        return seeds

    def folder(self, stage: str, seed: int) -> str:
        """The model folder of one seed of a stage (dvc.yaml's foreach outs spell it the same)."""
        return f"{self.output_dir}/{stage}_s{seed}"

    def of(self, stage: str) -> list[int]:
        return list(getattr(self, stage))

    def stage_of(self, folder: str) -> str | None:
        """The DVC stage (`grpo_seed@1`) that writes `folder`, when it is one of the seeds' model folders."""
        for stage in SEEDED_STAGES:
            for seed in self.of(stage):
                if folder == self.folder(stage, seed):
                    return f"{stage}_seed@{seed}"
        return None

    def overrides(self, stage: str, seed: int) -> list[str]:
        """What makes a run of `stage` the seed `seed` of `seeds` (`python -m flows.<stage> --seed <s>`, the
        command of dvc.yaml's <stage>_seed stages): its seed, its outputs in the seeds' folder, no registered
        model (the registry's aliases stay on the stage's own model), and no seeds of its own (it is one)."""
        sec, report = _SECTION[stage], f"{self.reports_dir}/{stage}_s{seed}"
        return [f"grpo.seed={seed}", f"{sec}.output_dir={self.folder(stage, seed)}", f"{sec}.metrics_file={report}.json",
                f"{sec}.plots_file={report}.csv", "tracking.register_models=false",
                *[f"seeds.{s}=[]" for s in SEEDED_STAGES]]
