"""The ONNX export `evaluate.backend: ort` decodes with: onnxruntime-genai's own model builder, run once
per model content and kept under `<evaluate.cache_dir>/onnx/`, so a re-evaluation reuses it.

The builder writes the decoder graph (fp32, for the CPU provider), its weights and `genai_config.json`
(token ids, KV-cache layout, search defaults). It runs as a child process: it loads the whole model in
memory, and a failure (an architecture it does not know) becomes a plain error, not a crash of the
evaluation. A half-written export never counts: it is built in a scratch folder and renamed when done.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from toolrl.config import ConfigError
from toolrl.evaluation.references import content_hash


def exported(folder: str | Path, cache_dir: str | Path) -> Path:
    """The folder of `folder`'s export (built now if this model content has none yet)."""
    out = Path(cache_dir) / "onnx" / f"{content_hash(folder, cache_dir)[:16]}-fp32-cpu"
    if (out / "genai_config.json").is_file():
        return out
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(folder), "-o", str(scratch),
           "-p", "fp32", "-e", "cpu", "-c", str(scratch / "build")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ConfigError(f"onnxruntime-genai's model builder could not export {folder} (exit {done.returncode}):\n"
                          f"{tail}\nSet evaluate.backend=hf for this model.")
    shutil.rmtree(scratch / "build", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return out
