"""Small models for the TRM tests: tiny-random taught (by overfitting) to answer in a fixed way, so a
real server or a real GRPO run sees well-formed output without any large model."""

from __future__ import annotations

from pathlib import Path


def context_sensitive_trm(model_dir: Path) -> tuple:
    """(model, tokenizer): a TRM on the tiny-random backbone, right padding, weights drawn large enough
    (normal, std 0.1) that a token's score depends on its context (see test_shared_prefix)."""
    import torch

    from toolrl.trm.model import init_trm

    model, tokenizer = init_trm(model_dir)
    tokenizer.padding_side = "right"
    torch.manual_seed(1)
    for p in model.parameters():
        if p.dim() == 2:
            p.data.normal_(0, 0.1)
    return model, tokenizer


def overfit(base_dir: Path, out_dir: Path, pairs: list[tuple[list[dict[str, str]], str]], steps: int = 150,
            lr: float = 3e-3, seed: int = 0) -> Path:
    """Train the model in `base_dir` on (chat prompt, answer) pairs, loss on the answer and its
    end-of-turn token only, and save it to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    batches = []
    for prompt, answer in pairs:
        head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + a_ids])
        labels = torch.tensor([[-100] * len(p_ids) + a_ids])
        batches.append((ids, labels))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        ids, labels = batches[step % len(batches)]
        keep = int((labels[0] != -100).sum()) + 1  # logits for the answer only: the vocabulary is large
        logits = model(input_ids=ids, logits_to_keep=keep).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, -keep + 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


class LocalServer:
    """`transformers serve` (an OpenAI-compatible server) on 127.0.0.1, started and stopped by a test."""

    def __init__(self, log_path: Path, startup_timeout: float = 180.0):
        import socket
        import subprocess
        import sys
        import time

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--device", "cpu", "--dtype", "float32"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}: see {log_path}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health within {startup_timeout}s: see {log_path}")

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()
