"""An LLM judge that labels tool calls (necessity, quality) through any OpenAI-compatible endpoint.

`POST <base_url>/v1/chat/completions` (a base_url that already ends in `/v1` is used as it is), one
user message built from `src/toolrl/prompts/trm_judge.md` (or `judge.prompt_file`), temperature 0. The answer is read
robustly (`parse_judgement`): the last JSON object naming both factors, else `necessity: yes`-style
lines; 0/1, true/false and yes/no are all accepted.

Nothing here raises on a bad judge: a timeout, a refused connection, a 5xx or 429 are retried
`max_retries` times with exponential backoff; what still fails, a 4xx, or an answer that cannot be
read becomes a `JudgeOutcome` with `verdict=None` and the reason, which the data stage writes to its
quarantine file.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from toolrl import formats
from toolrl.config import JudgeParams
from toolrl.trm.labels import Verdict

PROMPT_FILE = "trm_judge.md"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_FIELD = {name: re.compile(rf"{name}\W{{0,4}}\s*(yes|no|true|false|1|0)\b", re.IGNORECASE)
          for name in ("necessity", "quality")}


class JudgeFormatError(ValueError):
    """A judge answer that does not say both necessity and quality."""


@dataclass
class JudgeOutcome:
    verdict: Verdict | None
    error: str | None = None
    raw: str | None = None
    attempts: int = 0


def load_prompt(path: str | None = None) -> str:
    """The judge's message template: `path`, or the packaged prompts/trm_judge.md."""
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise FileNotFoundError(f"trm.data.judge.prompt_file {file} not found: fix the path or remove the key "
                                    "to use the packaged prompt")
        return file.read_text(encoding="utf-8")
    return resources.files("toolrl").joinpath("prompts", PROMPT_FILE).read_text(encoding="utf-8")


def render_prompt(template: str, step: dict[str, Any], tools: list[dict[str, Any]], reference: str) -> str:
    """The judge's message for one step record (its dialogue is the prompt's last message)."""
    dialogue = step["prompt"][-1]["content"] if step.get("prompt") else ""
    fields = {
        "tools": "\n".join(formats.render_tool(i, t) for i, t in enumerate(tools, start=1)),
        "dialogue": dialogue,
        "prefix": step.get("prefix") or "(nothing yet)",
        "call": step["call"],
        "reference": reference or "(none given)",
    }
    for key, value in fields.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _as_bit(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "yes", "no", "true", "false"):
        return int(value.strip().lower() in ("1", "yes", "true"))
    raise JudgeFormatError(f"expected 0/1, yes/no or true/false, got {value!r}")


def _json_objects(text: str) -> list[dict[str, Any]]:
    decoder, out, i = json.JSONDecoder(), [], text.find("{")
    while i >= 0:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = text.find("{", end)
    return out


def parse_judgement(text: str) -> Verdict:
    """A judge's answer as a Verdict. Raises JudgeFormatError saying what was missing."""
    if not isinstance(text, str) or not text.strip():
        raise JudgeFormatError("empty answer")
    for obj in reversed(_json_objects(text)):
        keys = {k.lower(): v for k, v in obj.items() if isinstance(k, str)}
        if "necessity" in keys and "quality" in keys:
            reason = keys.get("reason")
            return Verdict(_as_bit(keys["necessity"]), _as_bit(keys["quality"]),
                           f"judge: {reason}" if isinstance(reason, str) and reason else "judge")
    found = {name: pattern.findall(text) for name, pattern in _FIELD.items()}
    if all(found.values()):
        return Verdict(_as_bit(found["necessity"][-1]), _as_bit(found["quality"][-1]), "judge")
    missing = [name for name, hits in found.items() if not hits]
    raise JudgeFormatError(f"answer names no {' or '.join(missing)} value: {text[:120]!r}")


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


class Judge:
    """Labels step records with an LLM; thread-safe (one httpx client)."""

    def __init__(self, params: JudgeParams, sleep=time.sleep):
        import httpx

        if not params.base_url:
            raise ValueError("trm.data.labeler is `judge` but trm.data.judge.base_url is empty: set it to an "
                             "OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1) or use labeler `rule`")
        self.params = params
        self.url = chat_url(params.base_url)
        self.template = load_prompt(params.prompt_file)
        headers = {"content-type": "application/json"}
        key = os.environ.get(params.api_key_env) if params.api_key_env else None
        if key:
            headers["authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=httpx.Timeout(params.timeout_s), headers=headers)
        self._sleep = sleep

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _request(self, content: str) -> tuple[str | None, str | None, int]:
        """(answer text, error, attempts)."""
        import httpx

        body = {"model": self.params.model, "messages": [{"role": "user", "content": content}],
                "temperature": 0.0, "max_tokens": self.params.max_tokens}
        error = None
        for attempt in range(self.params.max_retries + 1):
            if attempt:
                self._sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            try:
                resp = self.client.post(self.url, json=body)
            except httpx.TimeoutException:
                error = f"timeout after {self.params.timeout_s}s"
                continue
            except httpx.TransportError as exc:
                error = f"connection failed ({exc.__class__.__name__}: {exc})"
                continue
            if resp.status_code in RETRY_STATUS:
                error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            if resp.status_code >= 400:
                return None, f"HTTP {resp.status_code}: {resp.text[:200]}", attempt + 1
            try:
                text = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                return None, f"response is not a chat completion: {resp.text[:200]!r}", attempt + 1
            return (text if isinstance(text, str) else ""), None, attempt + 1
        return None, f"{error} ({self.params.max_retries + 1} attempts)", self.params.max_retries + 1

    def label(self, step: dict[str, Any], tools: list[dict[str, Any]], reference: str) -> JudgeOutcome:
        text, error, attempts = self._request(render_prompt(self.template, step, tools, reference))
        if error is not None:
            return JudgeOutcome(None, f"judge request failed: {error}", None, attempts)
        try:
            return JudgeOutcome(parse_judgement(text), None, text, attempts)
        except JudgeFormatError as exc:
            return JudgeOutcome(None, f"malformed judge answer: {exc}", text, attempts)

    def label_many(self, items: list[tuple[dict[str, Any], list[dict[str, Any]], str]],
                   progress: Any = None) -> list[JudgeOutcome]:
        """Label (step, tools, reference) items `concurrency` at a time, in order."""
        with ThreadPoolExecutor(max_workers=self.params.concurrency) as pool:
            futures = [pool.submit(self.label, *item) for item in items]
            out = []
            for fut in futures:
                out.append(fut.result())
                if progress is not None:
                    progress()
        return out
