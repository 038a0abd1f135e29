"""The curate stage: upstream sources -> validated, deduplicated, length-capped, split examples.

    read (per source, sampled) -> convert -> validate -> deduplicate -> mask (optional)
      -> render views -> cap prompt tokens -> cap the no-call share -> stratified split
      -> compose multi-call examples from train examples (optional: validate, render, cap as above)
      -> mismatched no-call examples from train examples (optional: validate, render, cap as above)
      -> write files + data card

A `bfcl_multi_turn` source takes its own path (`curate_multi_turn`): its records are whole
conversations in an executable environment, split by scenario (`toolrl.multiturn.split`), and are
written under `multi_turn/` with their own quarantine and card section.

Every upstream record is accounted for: read + generated = kept + quarantined + duplicates
(generated: the extra examples a multi-turn record yields, and the composed and mismatched examples). The same
params give the same bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolrl.config import DataParams, Params, SourceParams
from toolrl.data import (
    bfcl,
    bfcl_multi_turn,
    card,
    compose,
    dedup,
    hammer,
    masking,
    mismatch,
    rlla,
    toolace,
    validate,
    xlam,
)
from toolrl.data.schema import CanonicalExample, DataError, Rejected, clean_target, render_views
from toolrl.data.split import SPLITS, assign, calls_bucket, rank
from toolrl.jsonl import write_jsonl

log = logging.getLogger(__name__)

SOURCES = {"rlla": rlla, "toolace": toolace, "xlam": xlam, "hammer": hammer, "bfcl": bfcl}
MULTI_TURN = "bfcl_multi_turn"  # not in SOURCES: it yields conversations, not CanonicalExamples
MULTI_TURN_DIR = "multi_turn"
PROMPT_TOO_LONG = "prompt_too_long"
NO_CALL_SHARE_CAP = "no_call_share_cap"
CONVERSION_ERROR = "conversion_error"


@dataclass
class CurateResult:
    output_dir: Path
    stats: dict[str, Any]
    card_markdown: str
    files: dict[str, Path] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    @property
    def totals(self) -> dict[str, int]:
        return self.stats["totals"]


def _progress(items: list[Any], desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="rec", disable=None, leave=False)


def masks_names(src: SourceParams) -> bool:
    if src.mask_tool_names is not None:
        return src.mask_tool_names
    return bool(getattr(SOURCES.get(src.name), "MASK_BY_DEFAULT", False))


def source_seed(src: SourceParams, data: DataParams) -> int:
    return data.seed if src.seed is None else src.seed


def single_turn_sources(data: DataParams) -> list[SourceParams]:
    return [s for s in data.sources if s.name != MULTI_TURN]


# ---------------------------------------------------------------- steps


def convert_source(src: SourceParams, data: DataParams,
                   counts: dict[str, Counter]) -> tuple[list[CanonicalExample], list[Rejected]]:
    """Read, sample and convert one source; a converter that trips on a record quarantines it."""
    from toolrl.data import readers

    module = SOURCES[src.name]
    raws = readers.sample(module.records(src), src.limit, source_seed(src, data))
    examples: list[CanonicalExample] = []
    rejected: list[Rejected] = []
    c = counts[src.tag]
    for raw in _progress(raws, f"convert {src.tag}"):
        try:
            outcomes = module.convert(raw, src, data)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            outcomes = [Rejected(CONVERSION_ERROR, f"{exc.__class__.__name__}: {exc}", src.tag,
                                 {"source": src.name, "index": raw.index, **raw.provenance},
                                 f"{src.tag}:{raw.index}", raw.record)]
        c["read"] += 1
        c["generated"] += len(outcomes) - 1
        for out in outcomes:
            (examples if isinstance(out, CanonicalExample) else rejected).append(out)
    return examples, rejected


def validate_all(examples: list[CanonicalExample]) -> tuple[list[CanonicalExample], list[Rejected]]:
    valid, rejected = [], []
    for ex in map(clean_target, examples):
        problem = validate.check(ex)
        if problem is None:
            valid.append(ex)
        else:
            rejected.append(Rejected(problem[0], problem[1], ex.source, ex.provenance, ex.id,
                                     ex.model_dump(mode="json")))
    return valid, rejected


def load_tokenizer(ref: str) -> Any:
    """The tokenizer that counts prompt tokens: SmolLM2's for the embedded/tiny models, else `ref`'s."""
    from toolrl import models

    if ref in (models.EMBEDDED, models.TINY):
        return models.smollm2_tokenizer()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(ref)
    except OSError as exc:
        raise DataError(f"data.tokenizer {ref!r} cannot be loaded ({str(exc).splitlines()[0]}): use "
                        f"{models.EMBEDDED!r}, a local tokenizer folder or a reachable hub id") from None


def prompt_lengths(records: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Tokens of each prompt as the model sees it (chat template with the generation prompt)."""
    texts = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
             for r in records]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(x) for x in ids]


def cap_prompts(examples: list[CanonicalExample], tokenizer: Any, cap: int,
                setting: str = "data.max_prompt_tokens") -> tuple[list[dict[str, Any]], dict[str, int], list[Rejected]]:
    """Render each example's views and count its prompt tokens: (records within `cap`, their
    lengths by id, the ones over it as `prompt_too_long`)."""
    rendered = [render_views(ex) for ex in examples]
    records: list[dict[str, Any]] = []
    lengths: dict[str, int] = {}
    rejected: list[Rejected] = []
    for ex, rec, n in zip(examples, rendered, prompt_lengths(rendered, tokenizer), strict=True):
        if n > cap:
            rejected.append(Rejected(PROMPT_TOO_LONG, f"prompt has {n} tokens > {setting}={cap}",
                                     ex.source, ex.provenance, ex.id, ex.model_dump(mode="json")))
            continue
        lengths[ex.id] = n
        records.append(rec)
    return records, lengths, rejected


def shared_prompt_tokens(tokenizer: Any) -> int:
    """Tokens by which a composed prompt is shorter than its two parts' prompts together (the system
    prompt's fixed text and the chat template, held once, less the joining text), measured on a
    sample pair: len(a) + len(b) - this is a composed prompt's length when a and b offer different
    tools, and an overestimate when they share some; each further part saves as much again."""
    la, lb, lab = prompt_lengths([render_views(e) for e in compose.sample_pair()], tokenizer)
    return la + lb - lab


def compose_train(data: DataParams, final: list[CanonicalExample], splits: dict[str, str],
                  lengths: dict[str, int], tokenizer: Any) -> tuple[list[CanonicalExample], list[dict[str, Any]],
                                                               dict[str, int], list[Rejected]]:
    """The composed examples (`toolrl.data.compose`) from the train split, through the same
    validation, views and prompt cap as upstream ones (`data.compose_max_prompt_tokens` when set):
    (built, kept records, their lengths, rejected).
    Only groups whose prompt fits the cap (estimated, or measured when parts share tools) are formed,
    so few are built just to be refused."""
    shared = shared_prompt_tokens(tokenizer)
    cap = data.compose_max_prompt_tokens or data.max_prompt_tokens

    def fits(parts: list[CanonicalExample]) -> bool:
        if sum(lengths[e.id] for e in parts) - shared * (len(parts) - 1) <= cap:
            return True
        # The estimate counts a tool the parts share once per part: measure such a group (parallel ones
        # share their function, so most of their prompt) instead of refusing it.
        tools = compose.merged_tools(parts)
        if tools is None or len(tools) == sum(len(e.tools) for e in parts):
            return False
        [n] = prompt_lengths([render_views(compose.build(parts, compose.PARALLEL, tools))], tokenizer)
        return n <= cap

    train = [ex for ex in final if splits.get(ex.id) == "train"]
    built = compose.compose(train, data, fits)
    setting = "data.compose_max_prompt_tokens" if data.compose_max_prompt_tokens else "data.max_prompt_tokens"
    return built, *admit(built, tokenizer, cap, setting)


def mismatch_train(data: DataParams, final: list[CanonicalExample], splits: dict[str, str],
                   tokenizer: Any) -> tuple[list[CanonicalExample], list[dict[str, Any]], dict[str, int],
                                            list[Rejected]]:
    """The mismatched no-call examples (`toolrl.data.mismatch`) from the train split, through the same
    validation, views and prompt cap as upstream ones: (built, kept records, their lengths, rejected)."""
    built = mismatch.mismatch([ex for ex in final if splits.get(ex.id) == "train"], data)
    return built, *admit(built, tokenizer, data.max_prompt_tokens, "data.max_prompt_tokens")


def admit(built: list[CanonicalExample], tokenizer: Any, cap: int, setting: str
          ) -> tuple[list[dict[str, Any]], dict[str, int], list[Rejected]]:
    """Generated train examples through validation, views and the prompt cap: (kept records, their
    lengths, rejected)."""
    valid, rejected = validate_all(built)
    records, kept_lengths, too_long = cap_prompts(valid, tokenizer, cap, setting)
    return records, kept_lengths, rejected + too_long


def no_call_excess(records: list[dict[str, Any]], max_share: float | None, seed: int) -> set[str]:
    """Ids of the no-call records to leave out so they are at most `max_share` of what is kept.

    Which ones is decided by a hash of (seed, id), as in the split: the choice does not depend on
    the order the records come in."""
    if max_share is None or max_share >= 1:
        return set()
    no_call = [r["id"] for r in records if not r["target"]["calls"]]
    keep = int(max_share * (len(records) - len(no_call)) / (1 - max_share))
    if len(no_call) <= keep:
        return set()
    ranked = sorted(no_call, key=lambda i: rank(seed, i))
    return set(ranked[keep:])


# ---------------------------------------------------------------- writing


def _source_rows(data: DataParams) -> list[dict[str, Any]]:
    rows = []
    for s in data.sources:
        where = s.location
        if s.name == "bfcl":
            where = ", ".join(bfcl.check_categories(s.categories))
        elif s.name == MULTI_TURN:
            where = ", ".join(bfcl_multi_turn.check_categories(s.categories))
        rows.append({"tag": s.tag, "name": s.name, "where": where, "limit": s.limit or "all",
                     "masked": masks_names(s)})
    return rows


def build_stats(data: DataParams, counts: dict[str, Counter], records: list[dict[str, Any]],
                splits: dict[str, str], lengths: dict[str, int], rejected: list[Rejected],
                dups: list[dedup.Duplicate]) -> dict[str, Any]:
    per_source: dict[str, Any] = {}
    tags = [s.tag for s in single_turn_sources(data)] + [g for g in (compose.SOURCE, mismatch.SOURCE) if g in counts]
    for tag in tags:
        c = counts[tag]
        mine = [r for r in records if r["source"] == tag]
        per_source[tag] = {
            "read": c["read"], "generated": c["generated"], "kept": len(mine),
            "quarantined": sum(1 for r in rejected if r.source == tag),
            "duplicates": sum(1 for d in dups if d.source == tag),
            "splits": {sp: sum(1 for r in mine if splits[r["id"]] == sp) for sp in SPLITS},
        }
    per_calls: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    for r in records:
        per_calls[calls_bucket(len(r["target"]["calls"]))][splits[r["id"]]] += 1
    totals = {
        "read": sum(c["read"] for c in counts.values()),
        "generated": sum(c["generated"] for c in counts.values()),
        "kept": len(records), "quarantined": len(rejected), "duplicates": len(dups),
    }
    return {
        "totals": totals,
        "per_split": {sp: sum(1 for r in records if splits[r["id"]] == sp) for sp in SPLITS},
        "per_source": per_source,
        "per_calls": dict(sorted(per_calls.items())),
        "quarantine_reasons": card.count_by([r.reason for r in rejected]),
        "duplicates": {"exact": sum(d.kind == "exact" for d in dups), "near": sum(d.kind == "near" for d in dups)},
        "prompt_tokens": card.length_summary([lengths[r["id"]] for r in records], data.max_prompt_tokens),
    }


def write_outputs(data: DataParams, out: Path, records: list[dict[str, Any]], splits: dict[str, str],
                  lengths: dict[str, int], rejected: list[Rejected], dups: list[dedup.Duplicate],
                  stats: dict[str, Any]) -> tuple[dict[str, Path], str]:
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for sp in SPLITS:
        files[sp] = out / f"{sp}.jsonl"
        write_jsonl(files[sp], [r for r in records if splits[r["id"]] == sp])
    files["quarantine"] = out / "quarantine.jsonl"
    write_jsonl(files["quarantine"], [r.entry() for r in rejected])
    files["duplicates"] = out / "duplicates.jsonl"
    write_jsonl(files["duplicates"], [d.__dict__ for d in dups])
    files["stats"] = out / "stats.json"
    files["stats"].write_text(json.dumps(stats, indent=2) + "\n")
    by_split: dict[str, list[int]] = {sp: [] for sp in SPLITS}
    tools_by_split: dict[str, list[int]] = {sp: [] for sp in SPLITS}
    for r in records:
        by_split[splits[r["id"]]].append(lengths[r["id"]])
        tools_by_split[splits[r["id"]]].append(len(r["tools"]))
    files["tools_png"] = out / card.TOOLS_PNG
    card.plot_tools(tools_by_split, files["tools_png"])
    files["tokens_png"] = out / card.TOKENS_PNG
    card.plot_tokens(by_split, data.max_prompt_tokens, files["tokens_png"])
    first_detail: dict[str, str] = {}
    for r in rejected:
        first_detail.setdefault(r.reason, r.detail)
    markdown = card.render(stats, _source_rows(data), first_detail)
    if "multi_turn" in stats:
        markdown += "\n" + card.render_multi_turn(stats["multi_turn"])
    files["card"] = out / "card.md"
    files["card"].write_text(markdown)
    return files, markdown


# ---------------------------------------------------------------- multi-turn


def curate_multi_turn(params: Params, sources: list[SourceParams], tokenizer: Any, out: Path) -> dict[str, Any]:
    """The bfcl_multi_turn sources: training scenarios' RL records and SFT trajectories under `out`,
    evaluation scenarios counted and left out; returns the card's multi-turn stats."""
    from toolrl.data.schema import check_multi_turn_rl, check_multi_turn_sft
    from toolrl.multiturn.split import EVAL, TRAIN, scenario_split
    from toolrl.multiturn.trajectory import Trajectory

    split = scenario_split(params.multi_turn)
    rl: list[dict[str, Any]] = []
    sft: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    cases: dict[str, Counter] = defaultdict(Counter)
    for src in sources:
        got = bfcl_multi_turn.curate_source(src, params.data, split)
        rl += got.rl
        sft += got.sft
        rejected += got.rejected
        for key, ids in (("held_out", got.held_out), ("kept", [r["case_id"] for r in got.rl]),
                         ("quarantined", [r.record["id"] for r in got.rejected])):
            for case_id in ids:
                cases[case_id.rpartition("_")[0]][key] += 1
        if got.read != len(got.held_out) + len(got.rl) + len(got.rejected):
            raise RuntimeError(f"multi-turn curation lost cases of {src.tag} (a bug)")
    counted = {cat: {"read": c["held_out"] + c["kept"] + c["quarantined"], "held_out": c["held_out"],
                     "kept": c["kept"], "quarantined": c["quarantined"]} for cat, c in sorted(cases.items())}
    for record in rl:  # a record that cannot feed training is a bug here, not a quarantine entry
        problem = check_multi_turn_rl(record)
        if problem:
            raise RuntimeError(f"multi-turn RL record {record['id']}: {problem} (a bug)")
    for record in sft:
        problem = check_multi_turn_sft(record)
        if problem:
            raise RuntimeError(f"multi-turn SFT record {record['id']}: {problem} (a bug)")
    if any(split.is_eval(r["case_id"]) for r in rl + sft):
        raise RuntimeError("an evaluation scenario reached the multi-turn training records (a bug)")
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train_rl.jsonl", rl)
    write_jsonl(out / "train_sft.jsonl", sft)
    write_jsonl(out / "quarantine.jsonl", [r.entry() for r in rejected])
    scenarios = {"seed": params.multi_turn.seed, "eval_share": params.multi_turn.eval_share,
                 "groups": len(split.groups), TRAIN: len(split.train), EVAL: len(split.eval)}
    (out / "split.json").write_text(json.dumps(
        {**scenarios, "train_scenarios": sorted(split.train), "eval_scenarios": sorted(split.eval),
         "shared_groups": [g for g in split.groups if len(g) > 1]}, indent=1) + "\n")
    stats = card.multi_turn_stats([Trajectory.from_dict(r["trajectory"]) for r in sft],
                                  counted, scenarios)
    tokens = card.length_summary(prompt_lengths(rl, tokenizer), 0)
    stats["prompt_tokens"] = {k: v for k, v in tokens.items() if k != "cap"}  # no cap: see docs/DATA.md
    stats["quarantine_reasons"] = card.count_by([r.reason for r in rejected])
    return stats


# ---------------------------------------------------------------- entry point


def curate(params: Params, *, track: bool = True) -> CurateResult:
    """Run the whole stage for `params.data`; with `track`, log params, counts and card to MLflow."""
    started = time.perf_counter()
    data = params.data
    for src in data.sources:  # fail on a held-out or unknown BFCL category before reading anything
        if src.name == "bfcl":
            bfcl.check_categories(src.categories)
        elif src.name == MULTI_TURN:
            bfcl_multi_turn.check_categories(src.categories)
    counts: dict[str, Counter] = defaultdict(Counter)
    examples: list[CanonicalExample] = []
    rejected: list[Rejected] = []
    for src in single_turn_sources(data):
        ex, rej = convert_source(src, data, counts)
        examples += ex
        rejected += rej
    valid, invalid = validate_all(examples)
    rejected += invalid
    unique, dups = dedup.deduplicate(valid, data.near_duplicate_threshold)

    by_tag = {s.tag: s for s in data.sources}
    final: list[CanonicalExample] = []
    for ex in unique:
        src = by_tag[ex.source]
        if masks_names(src) or src.mask_param_names:
            ex = masking.mask(ex, source_seed(src, data), tool_names=masks_names(src),
                              param_names=src.mask_param_names)
        final.append(ex)

    tokenizer = load_tokenizer(data.tokenizer)
    records, lengths, too_long = cap_prompts(final, tokenizer, data.max_prompt_tokens)
    rejected += too_long
    excess = no_call_excess(records, data.max_no_call_share, data.seed)
    if excess:
        n_no_call = sum(1 for r in records if not r["target"]["calls"])
        detail = (f"no-call examples were {n_no_call} of {len(records)}; data.max_no_call_share="
                  f"{data.max_no_call_share} keeps {n_no_call - len(excess)} of them")
        for ex in final:
            if ex.id in excess:
                rejected.append(Rejected(NO_CALL_SHARE_CAP, detail, ex.source, ex.provenance, ex.id,
                                         ex.model_dump(mode="json")))
                del lengths[ex.id]
        records = [r for r in records if r["id"] not in excess]

    splits = assign([e for e in final if e.id in lengths], data.split, data.seed)
    # Generated train examples, after the split and from train examples only (composed, then mismatched).
    makers = ((compose, data.compose_multi_call, lambda: compose_train(data, final, splits, lengths, tokenizer)),
              (mismatch, data.mismatch_no_call, lambda: mismatch_train(data, final, splits, tokenizer)))
    generated: dict[str, dict[str, int]] = {}
    for module, asked, make in makers:
        if not asked:
            continue
        built, more, more_lengths, refused = make()
        counts[module.SOURCE]["generated"] += len(built)
        records += more
        lengths |= more_lengths
        splits |= dict.fromkeys(more_lengths, "train")
        rejected += refused
        generated[module.SOURCE] = module.summary(asked, built, set(more_lengths))
    stats = build_stats(data, counts, records, splits, lengths, rejected, dups) | generated
    t = stats["totals"]
    if t["read"] + t["generated"] != t["kept"] + t["quarantined"] + t["duplicates"]:
        raise RuntimeError(f"curation lost records (a bug): {t}")
    out = Path(data.output_dir)
    multi = [s for s in data.sources if s.name == MULTI_TURN]
    if multi:
        stats["multi_turn"] = curate_multi_turn(params, multi, tokenizer, out / MULTI_TURN_DIR)
    files, markdown = write_outputs(data, out, records, splits, lengths, rejected, dups, stats)
    result = CurateResult(output_dir=out, stats=stats, card_markdown=markdown, files=files)
    if track:
        result.mlflow_run_id = log_to_mlflow(params, result, started)
    log.info("curated %s", t)
    return result


def log_to_mlflow(params: Params, result: CurateResult, started: float | None = None) -> str:
    """The stage's MLflow run: data params, counts as `curate/<name>` metrics, the card and stats."""
    import mlflow

    from toolrl import tracking

    t = result.stats["totals"]
    metrics = {**t, **{f"split_{k}": v for k, v in result.stats["per_split"].items()},
               **{f"quarantine_{k}": v for k, v in result.stats["quarantine_reasons"].items()}}
    if "multi_turn" in result.stats:
        mt = result.stats["multi_turn"]
        metrics |= {"multi_turn_train_scenarios": mt["scenarios"]["train"],
                    "multi_turn_eval_scenarios": mt["scenarios"]["eval"],
                    "multi_turn_trajectories": mt["trajectories"]["all"]["trajectories"],
                    "multi_turn_quarantined": sum(mt["quarantine_reasons"].values())}
    if "composed" in result.stats:
        metrics |= {f"composed_{k}": v for k, v in result.stats["composed"].items()}
    if "mismatched" in result.stats:
        metrics |= {f"mismatched_{k}": v for k, v in result.stats["mismatched"].items()}
    with tracking.stage_run(params, "curate", log_params=params.data, started=started) as run:
        tracking.log_metrics("curate", metrics)
        for key in ("card", "stats", "tools_png", "tokens_png"):
            mlflow.log_artifact(str(result.files[key]), artifact_path="data_card")
        return run.info.run_id

