"""Main venv: dump the seeded BFCL cases' rendered prompts; or run the hf backend on them and time it; or
grade a completions file. Scratch for the OpenVINO GenAI measurement (docs/BENCHMARKS.md)."""
import json, sys, time
from toolrl.config import load_params
from toolrl.evaluation import bfcl
from toolrl.evaluation.generation import HFGenerator

MODEL = "/work/eq135/models/sft"
CATS = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]


def cases(limit):
    return [c for cat in CATS for c in bfcl.load_category(cat, limit, 0)]


if __name__ == "__main__":
    cmd, limit = sys.argv[1], int(sys.argv[2])
    cs = cases(limit)
    if cmd == "dump":
        gen = HFGenerator(MODEL, 8, 192)
        json.dump([{"id": c.id, "text": gen.render(c.messages),
                    "ids": gen.tokenizer(gen.render(c.messages), add_special_tokens=False)["input_ids"]} for c in cs],
                  open(sys.argv[3], "w"))
    elif cmd == "run":
        bs = int(sys.argv[3])
        t0 = time.perf_counter(); gen = HFGenerator(MODEL, bs, 192); load = time.perf_counter() - t0
        t0 = time.perf_counter(); out = gen.generate([c.messages for c in cs]); secs = time.perf_counter() - t0
        json.dump({"backend": "hf", "bs": bs, "load": load, "seconds": secs,
                   "completions": {c.id: o for c, o in zip(cs, out)}}, open(sys.argv[4], "w"))
    elif cmd == "grade":
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(MODEL)
        r = json.load(open(sys.argv[3]))
        comp = r["completions"]
        r["correct"] = sum(bfcl.grade(c, comp[c.id]).correct for c in cs)
        r["tokens"] = sum(len(tok(comp[c.id], add_special_tokens=False)["input_ids"]) for c in cs)
        r["n"] = len(cs)
        print(json.dumps({k: v for k, v in r.items() if k != "completions"}))
        json.dump(r, open(sys.argv[3], "w"))
