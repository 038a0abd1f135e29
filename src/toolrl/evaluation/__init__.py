"""Evaluation: score any set of models on BFCL (official AST checker) and API-Bank, side by side.

- `records`: what a case is (`BenchmarkCase`) and what grading returns (`Grade`, error categories);
- `bfcl`, `api_bank`: load a benchmark's cases as prompts in the project's format and grade completions;
- `sampling`: which cases: a sample per category fixed by a seed, nested across limits;
- `stats`: intervals, paired comparisons, power;
- `references`: resolve model references (stage names, `models:/name@alias`, hub ids, folders) to a
  local folder and a content hash;
- `generation`: batched HF generation on CPU, vLLM on GPU;
- `cache`: completions cached per model hash, so adding a model generates only for that model;
- `runner`: resolve, generate what is missing, grade;
- `report`: tables, CSV, plots, metrics.json;
- `stage`: the whole stage with its MLflow run (`run_evaluation`), used by `toolrl eval` and Prefect.
"""
