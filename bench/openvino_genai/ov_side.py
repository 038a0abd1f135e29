"""/tmp/ov venv: OpenVINO GenAI's LLMPipeline (CPU) on the dumped prompts, greedy, 192 new tokens, batches
of `bs` in the hf backend's order (longest first), timed. Checks its tokenizer gives hf's token ids."""
import json, sys, time
import openvino_genai as ov_genai

prompts = json.load(open(sys.argv[1]))
bs, out_path = int(sys.argv[2]), sys.argv[3]
# exact: f32 KV cache and no dynamic int8 quantization of activations (the CPU plugin's defaults are u8 and 32)
exact = len(sys.argv) > 4 and sys.argv[4] == "exact"
props = {"KV_CACHE_PRECISION": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"} if exact else {}
t0 = time.perf_counter()
pipe = ov_genai.LLMPipeline("/tmp/ov_sft", "CPU", **props)
load = time.perf_counter() - t0
tok = pipe.get_tokenizer()
same_ids = sum(list(tok.encode(p["text"], add_special_tokens=False).input_ids.data[0]) == p["ids"] for p in prompts)
cfg = pipe.get_generation_config()
cfg.max_new_tokens = 192
cfg.do_sample = False
cfg.stop_strings = set()
order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]["ids"]))
outs = [""] * len(prompts)
t0 = time.perf_counter()
for s in range(0, len(order), bs):
    batch = order[s:s + bs]
    res = pipe.generate([prompts[i]["text"] for i in batch], cfg, apply_chat_template=False)
    for i, text in zip(batch, res.texts):
        outs[i] = text.split("<|im_end|>")[0]
secs = time.perf_counter() - t0
json.dump({"backend": "openvino-genai" + (" exact" if exact else ""), "bs": bs, "load": load, "seconds": secs, "same_prompt_ids": same_ids,
           "completions": {p["id"]: o for p, o in zip(prompts, outs)}}, open(out_path, "w"))
print("ov", "exact" if exact else "default", bs, round(load, 1), round(secs, 1), same_ids, len(prompts))
