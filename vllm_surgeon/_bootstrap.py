"""Run by `vllm_surgeon.pth` at interpreter start, only when VLLM_SURGEON_HUNKS is set: install the hook.

Errors in the sets are not raised here (site.py would only print them and go on): they are kept
and raised when vLLM is imported, which stops vLLM's start (fail closed).
"""

import sys

try:
    from ._runtime import runtime

    runtime()
except Exception as exc:  # never break an unrelated interpreter; the vLLM plugin tries again
    print(f"vllm-surgeon: bootstrap failed, the vLLM plugin will try again: {type(exc).__name__}: {exc}", file=sys.stderr)
