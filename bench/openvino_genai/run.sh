#!/bin/bash
# OpenVINO GenAI against the hf backend (lean loop), the SFT model, 12 cases per BFCL category, 192 new
# tokens, fp32, both threads, idle cores, rows alternating.
set -e
cd /work/main
.venv/bin/python /tmp/ovbench/hf_side.py dump 12 /tmp/ovbench/p12.json 2>/dev/null
for bs in 8 16; do
  .venv/bin/python /tmp/ovbench/hf_side.py run 12 $bs /tmp/ovbench/hf$bs.json 2>/dev/null
  /tmp/ov/bin/python /tmp/ovbench/ov_side.py /tmp/ovbench/p12.json $bs /tmp/ovbench/ov$bs.json
  /tmp/ov/bin/python /tmp/ovbench/ov_side.py /tmp/ovbench/p12.json $bs /tmp/ovbench/ovx$bs.json exact
done
for f in hf8 ov8 ovx8 hf16 ov16 ovx16; do .venv/bin/python /tmp/ovbench/hf_side.py grade 12 /tmp/ovbench/$f.json 2>/dev/null; done
python3 - <<'P'
import json
for bs in (8, 16):
  a = json.load(open(f"/tmp/ovbench/hf{bs}.json"))
  for name in ("ov", "ovx"):
    b = json.load(open(f"/tmp/ovbench/{name}{bs}.json"))
    same = sum(a["completions"][k] == b["completions"][k] for k in a["completions"])
    print(bs, "hf", round(a["seconds"], 1), name, round(b["seconds"], 1), "x", round(a["seconds"] / b["seconds"], 2),
          "same", same, len(a["completions"]), "correct", a["correct"], b["correct"], "tokens", a["tokens"], b["tokens"])
P
# then all 60 prompts in one call (OpenVINO GenAI's continuous batching), exact and default:
/tmp/ov/bin/python /tmp/ovbench/ov_side.py /tmp/ovbench/p12.json 60 /tmp/ovbench/ovx60.json exact
/tmp/ov/bin/python /tmp/ovbench/ov_side.py /tmp/ovbench/p12.json 60 /tmp/ovbench/ov60.json
for f in ovx60 ov60; do .venv/bin/python /tmp/ovbench/hf_side.py grade 12 /tmp/ovbench/$f.json 2>/dev/null; done
