"""The lean decode loop (toolrl.decode) draws `generate`'s tokens: greedy and seeded sampling, on fp32
weights, with prompts of different lengths (left padding), groups sharing a prompt, and rows that stop
at different steps (and so leave the batch early)."""

from __future__ import annotations

import pytest
import torch

from toolrl import formats

QUESTIONS = ["Weather in Paris?", "What is the weather like in Lima today, and should I take an umbrella with me?",
             "Convert 20 EUR to USD."]


@pytest.fixture(scope="module")
def model_and_prompts(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    # tiny-random's weights barely make the context matter; larger ones make every token count (as in
    # tests/test_shared_prefix.py), so a wrong position, mask or cache row changes the tokens.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.1)
    prompts = [tokenizer.apply_chat_template(formats.prompt_messages([], [{"role": "user", "content": q}]),
                                             add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
               for q in QUESTIONS]
    assert len({len(p) for p in prompts}) == 3
    return model, tokenizer, [list(p) for p in prompts for _ in range(3)]  # three groups of three


def _generate(model, prompt_ids, config) -> list[list[int]]:
    """`generate` on the left-padded prompts, each completion cut after its first stop token (as TRL does)."""
    width = max(len(p) for p in prompt_ids)
    ids = torch.tensor([[config.pad_token_id] * (width - len(p)) + p for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:].tolist()
    stops = set(config.eos_token_id or [])
    cut = []
    for row in out:
        end = next((i for i, t in enumerate(row) if t in stops), len(row) - 1)
        cut.append(row[:end + 1])
    return cut


def _config(tokenizer, stops, max_new_tokens=12, **sampling):
    from transformers import GenerationConfig

    return GenerationConfig(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=stops,
                            disable_compile=True, **sampling)


def _stops_midway(model, tokenizer, prompt_ids, **sampling) -> list[int]:
    """Stop tokens that end some rows early and others not: tokens the unstopped completions emit midway."""
    seed = sampling.pop("seed", None)
    if seed is not None:
        torch.manual_seed(seed)
    free = _generate(model, prompt_ids, _config(tokenizer, [tokenizer.eos_token_id], **sampling))
    return sorted({free[0][3], free[4][6]})


@pytest.mark.parametrize("sampling", [{"do_sample": False},
                                      {"do_sample": True, "temperature": 0.8, "top_p": 0.9, "top_k": 40, "seed": 0},
                                      {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "seed": 3}],
                         ids=["greedy", "sampled-warped", "sampled-plain"])
def test_decode_draws_generates_tokens(model_and_prompts, sampling):
    from toolrl.decode import decode

    model, tokenizer, prompt_ids = model_and_prompts
    sampling = dict(sampling)
    stops = _stops_midway(model, tokenizer, prompt_ids, **sampling)
    seed = sampling.pop("seed", None)
    config = _config(tokenizer, stops, **sampling)
    if seed is not None:
        torch.manual_seed(seed)
    stock = _generate(model, prompt_ids, config)
    if seed is not None:
        torch.manual_seed(seed)
    ours = decode(model, prompt_ids, config)
    assert ours == stock
    lengths = {len(c) for c in stock}
    assert min(lengths) < 12 and max(lengths) == 12  # rows left the batch while others went on
    if sampling["do_sample"]:
        assert len({tuple(c) for c in stock}) > 3  # the rows of a group drew different completions


def test_decode_without_stop_tokens_and_min_new_tokens(model_and_prompts):
    from toolrl.decode import decode

    model, tokenizer, prompt_ids = model_and_prompts
    stops = _stops_midway(model, tokenizer, prompt_ids, do_sample=False)
    config = _config(tokenizer, stops, do_sample=False, min_new_tokens=12)  # the stop tokens are held back
    assert decode(model, prompt_ids, config) == _generate(model, prompt_ids, config)
    assert all(len(c) == 12 for c in decode(model, prompt_ids, config))


@pytest.mark.parametrize("lookup_tokens", [0, 4])
def test_evaluation_generator_lean_equals_generate(tiny_model_dir, lookup_tokens):
    """The evaluation's HFGenerator decodes with the lean loop, with greedy lookup drafts or without; its
    texts are those of batched `generate`."""
    from toolrl.evaluation.generation import HFGenerator

    prompts = [formats.prompt_messages([], [{"role": "user", "content": q}]) for q in QUESTIONS]
    lean = HFGenerator(tiny_model_dir, batch_size=2, max_new_tokens=8, lookup_tokens=lookup_tokens)
    assert lean.engine == "lean"
    stock = HFGenerator(tiny_model_dir, batch_size=2, max_new_tokens=8, engine="generate")
    done: list[int] = []
    assert lean.generate(prompts, lambda idx, texts: done.extend(idx)) == stock.generate(prompts)
    assert sorted(done) == [0, 1, 2]
    assert (lean.lookup.passes > 0) if lookup_tokens else lean.lookup is None


def test_supported_models():
    from types import SimpleNamespace

    from toolrl.decode import supported

    def model(**config):
        return SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa", **config))

    assert supported(model())
    assert supported(model(sliding_window=4096, use_sliding_window=False, layer_types=["full_attention"] * 2))
    assert not supported(model(sliding_window=4096, layer_types=["full_attention", "sliding_attention"]))
    assert not supported(model(sliding_window=4096))  # Mistral: a window on every layer
    assert not supported(model(is_encoder_decoder=True))


def test_trm_sampling_lean_equals_generate(tiny_model_dir, monkeypatch):
    """The TRM data stage samples with the lean loop: without drafts, the same completions as
    `generate`'s `num_return_sequences` path from the same seed; with them (the default), through the
    speculative loop, one stage-wide pool, as many completions."""
    from toolrl import decode
    from toolrl.config import TrmDataParams
    from toolrl.trm.data import sample_completions

    prompts = [[{"role": "user", "content": "list the files"}],
               [{"role": "system", "content": "be brief"}, {"role": "user", "content": "move a.txt to b/ please"}]]
    sec = TrmDataParams(samples_per_prompt=3, max_new_tokens=12, generation_batch_size=6, temperature=1.0,
                        lookup_tokens=0)
    lean = sample_completions(tiny_model_dir, prompts, sec)
    pools = []
    speculate = decode._speculate
    monkeypatch.setattr(decode, "_speculate", lambda *a, **kw: pools.append(a[9]) or speculate(*a, **kw))
    drafted = sample_completions(tiny_model_dir, prompts, sec.model_copy(update={"lookup_tokens": 4}))
    assert [len(c) for c in drafted] == [3, 3] and len(pools) == 1 and pools[0].passes > 0
    monkeypatch.setattr(decode, "supported", lambda model: False)
    assert sample_completions(tiny_model_dir, prompts, sec) == lean
    assert [len(c) for c in lean] == [3, 3] and len({c for cs in lean for c in cs}) > 1  # sampled, not one string


def test_carried_caches_continue_conversations_as_a_fresh_prefill_does(model_and_prompts):
    """Round two's prompts extend round one's (the message written, then a reply): extending the carried
    caches gives the fresh prefill's cache and `generate`'s tokens, each distinct prompt's cache is
    kept for one round only, and a prompt that extends nothing stored is prefilled from scratch."""
    from toolrl.decode import Lookup, PrefixCaches, decode, prefill

    model, tokenizer, prompt_ids = model_and_prompts
    config = _config(tokenizer, [tokenizer.eos_token_id])
    carry = PrefixCaches()
    carry.next_round()
    first = decode(model, prompt_ids, config, carry=carry)
    reply = tokenizer("<|im_end|>\n<|im_start|>user\nAnd tomorrow?<|im_end|>\n<|im_start|>assistant\n",
                      add_special_tokens=False)["input_ids"]
    second_prompts = [p + c + reply for p, c in zip(prompt_ids, first, strict=True)]
    second_prompts[-1] = prompt_ids[-1][:5] + reply  # extends no stored prompt
    carry.next_round()
    fed: list[int] = []  # the tokens each forward pass reads
    hook = model.register_forward_pre_hook(lambda m, a, kw: fed.append(kw["input_ids"].size(1)), with_kwargs=True)
    try:
        carried, which = prefill(model, second_prompts, model.device, carry)
    finally:
        hook.remove()
    # Greedy: a group's rows wrote the same message, so one pass per group reads its new tokens (the
    # prompt's last token, the message, the reply but its last token); the unmatched prompt is read whole.
    assert sorted(fed) == sorted([len(first[g]) + len(reply) for g in (0, 3, 6)] + [5 + len(reply) - 1])
    fresh, fresh_which = prefill(model, second_prompts, model.device)
    assert which == fresh_which
    for a, b in zip(carried, fresh, strict=True):
        for la, lb in zip(a.layers, b.layers, strict=True):
            torch.testing.assert_close(la.keys, lb.keys, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(la.values, lb.values, rtol=1e-5, atol=1e-5)
    carry.next_round()
    stock = _generate(model, second_prompts, config)
    assert decode(model, second_prompts, config, carry=carry) == stock
    carry.next_round()
    assert len(carry._previous) == len({tuple(p) for p in second_prompts})  # only the last round's
    # Lookup drafts over carried caches (multi-turn GRPO uses both): still generate's greedy tokens.
    lookup = Lookup(4)
    lookup.history.extend(first)
    assert decode(model, second_prompts, config, carry=carry, lookup=lookup) == stock
    assert lookup.passes > 0


def test_sft_probe_completions_are_generates(tiny_model_dir, monkeypatch):
    """The SFT probe decodes through `decode.complete` (the lean loop with lookup drafts): the texts of
    left-padded batched `generate`, in fp32 and under bf16 autocast alike; the model's train mode is restored."""
    from transformers import GenerationConfig

    from toolrl import decode
    from toolrl.decode import complete, prompt_ids
    from toolrl.models import load_model
    from toolrl.training.probe import generate as probe

    model, tokenizer = load_model(str(tiny_model_dir), dtype="float32")
    prompts = [formats.prompt_messages([], [{"role": "user", "content": q}]) for q in QUESTIONS]
    config = GenerationConfig(do_sample=False, max_new_tokens=8, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    ids = prompt_ids(tokenizer, prompts)[1]
    with torch.inference_mode():
        stock = complete(model.eval(), ids[:2], config, tokenizer.pad_token_id, engine="generate")
        stock = [*stock, *complete(model, ids[2:], config, tokenizer.pad_token_id, engine="generate")]
    model.train()
    passes = []
    speculate = decode._speculate
    monkeypatch.setattr(decode, "_speculate", lambda *a, **kw: passes.append(a[9]) or speculate(*a, **kw))
    assert probe(model, tokenizer, prompts, 8, batch_size=2) == tokenizer.batch_decode(stock, skip_special_tokens=True)
    assert passes and passes[0].passes > 0  # with lookup drafts: greedy, generate's tokens still
    assert model.training
    assert len(probe(model, tokenizer, prompts, 8, batch_size=2, bf16=True)) == len(prompts)


@pytest.mark.parametrize("history", [False, True], ids=["own-text", "with-history"])
def test_lookup_drafts_keep_generates_greedy_tokens(model_and_prompts, history):
    """Checking drafted tokens in one pass changes how many passes a completion takes, not its tokens:
    greedy completions equal `generate`'s, with drafts accepted, refused and cut by stop tokens."""
    from toolrl.decode import Lookup, decode

    model, tokenizer, prompt_ids = model_and_prompts
    stops = _stops_midway(model, tokenizer, prompt_ids, do_sample=False)
    config = _config(tokenizer, stops, do_sample=False, max_new_tokens=24)
    stock = _generate(model, prompt_ids, config)
    lookup = Lookup(tokens=4, ngram=3)
    if history:  # a pool of earlier completions, some of them the answers themselves
        lookup.history.extend([c[:5] for c in stock[::2]] + [[1, 2, 3]])
    assert decode(model, prompt_ids, config, lookup=lookup) == stock
    assert lookup.emitted == sum(len(c) for c in stock)
    assert lookup.tokens_per_pass() > 1.0  # some drafts were accepted
    assert len(lookup.history) >= len(prompt_ids)  # this call's completions are the next call's pool


def test_lookup_falls_back_where_processors_read_the_sequence(model_and_prompts):
    from toolrl.decode import Lookup, decode

    model, tokenizer, prompt_ids = model_and_prompts
    config = _config(tokenizer, [tokenizer.eos_token_id], do_sample=False, repetition_penalty=1.3)
    lookup = Lookup(tokens=4)
    assert decode(model, prompt_ids, config, lookup=lookup) == _generate(model, prompt_ids, config)
    assert lookup.passes == 0  # the token-by-token loop ran


def test_verify_keeps_the_distribution_of_each_position():
    """Speculative sampling with a one-token draft: whatever the draft, the token a position emits is
    distributed as the policy's p there (10^5 draws against p, a chi-square bound), and greedy keeps
    drafted tokens exactly while they are the argmax."""
    from toolrl.decode import verify

    torch.manual_seed(0)
    p0 = torch.tensor([0.5, 0.3, 0.15, 0.05])
    p1 = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 100_000
    scores = torch.stack([p0.log(), p1.log()])[None].expand(n, -1, -1).contiguous()
    for draft in (0, 1, 3):
        drafts = torch.full((n, 1), draft)
        kept, following = verify(scores, drafts, torch.ones(n, dtype=torch.long), do_sample=True)
        first = torch.where(kept == 1, drafts[:, 0], following)
        counts = torch.bincount(first, minlength=4).double()
        chi2 = ((counts - n * p0.double()) ** 2 / (n * p0.double())).sum()
        assert chi2 < 16.3, (draft, counts)  # 3 degrees of freedom, p = 0.001
        assert abs(kept.double().mean() - p0[draft]) < 0.01  # accepted with probability p(d)
        second = following[kept == 1]  # after an accepted draft, the next token is drawn from p1
        counts = torch.bincount(second, minlength=4).double()
        chi2 = ((counts - second.numel() * p1.double()) ** 2 / (second.numel() * p1.double())).sum()
        assert chi2 < 16.3, (draft, counts)
    greedy = torch.stack([p0.log(), p1.log(), p0.log()])[None].repeat(3, 1, 1)
    drafts = torch.tensor([[0, 3], [0, 1], [2, 3]])
    kept, following = verify(greedy, drafts, torch.tensor([2, 2, 1]), do_sample=False)
    assert kept.tolist() == [2, 1, 0] and following.tolist() == [0, 3, 0]
