"""vllm-surgeon: change vLLM's internals by small anchored hunks, in every vLLM process, refused loudly
when the code they were written against has changed.

Public API (everything else is private): `applied()`, `transform`, `load_set`, `copied_from` (the
decorator that checks a monkey patch's upstream code at import), and the errors `SurgeonError`,
`HunkFileError`, `UnknownSetError`. Imports are lazy so that the `.pth` bootstrap
and the vLLM plugin cost nothing when `VLLM_SURGEON_HUNKS` is unset.
"""

# Neither `from __future__ import annotations` nor `from typing import ...` (annotations are
# strings instead): the `.pth` bootstrap imports this package in every interpreter where
# VLLM_SURGEON_HUNKS is set, and importing typing alone costs more than the rest of its start.
TYPE_CHECKING = False

__all__ = ["applied", "transform", "load_set", "copied_from", "SurgeonError", "HunkFileError", "UnknownSetError", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from vllm_surgeon.core.model import HunkFileError, HunkSet
    from vllm_surgeon.core.refusal import SurgeonError
    from vllm_surgeon.runtime.copied import copied_from
    from vllm_surgeon.runtime.shared import AppliedSet
    from vllm_surgeon.sets.loader import UnknownSetError
    from vllm_surgeon.sets.pyfile import transform


def applied() -> "list[AppliedSet]":
    """The sets applied in this process: name, file, targets, per-module state, vLLM version, pid, process."""
    from vllm_surgeon.runtime.runtime import runtime

    current = runtime(create=False)
    return current.applied() if current is not None else []


def load_set(name: str) -> "HunkSet":
    """Find set `name` on the search path and parse it (HunkFileError names the file and line at fault)."""
    from vllm_surgeon.sets.search import load

    return load(name)


_LAZY = {
    "transform": ("vllm_surgeon.sets.pyfile", "transform"),
    "copied_from": ("vllm_surgeon.runtime.copied", "copied_from"),  # issue 16
    "SurgeonError": ("vllm_surgeon.core.refusal", "SurgeonError"),
    "HunkFileError": ("vllm_surgeon.core.model", "HunkFileError"),
    "UnknownSetError": ("vllm_surgeon.sets.loader", "UnknownSetError"),
    # Lazy as the rest: the `.pth` bootstrap imports this package and nothing more (tests/test_bootstrap.py).
    "__version__": ("vllm_surgeon.core.version", "__version__"),
}


def __getattr__(name: str) -> "Any":
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vllm_surgeon' has no attribute {name!r}")
