"""The `vllm.general_plugins` entry point, called by vLLM in every process it starts.

Where the `.pth` bootstrap did not run, this installs the hook and patches in place the target
modules vLLM already imported (in vLLM 0.32/0.33 ~330 `vllm.*` modules, the scheduler among them).
"""

from vllm_surgeon.core import settings as _settings


def register() -> None:
    if not _settings.hunks_named():  # " , " names no set
        return
    from vllm_surgeon.runtime.runtime import runtime

    current = runtime()
    if current is not None:
        current.sync()
