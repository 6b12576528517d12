"""What the parts of this process's runtime share: its lock, the states a patched module can be in,
what `applied()` returns, and the attributes `Runtime` holds (runtime.py makes them)."""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.source import TreeReader
from vllm_surgeon.engine.results import PatchedModule, Plan

log = logging.getLogger("vllm_surgeon")
LOCK = threading.RLock()
# vllm-surgeon's own set (see runtime/compile_cache.hunk): stacked after the user's sets, never
# reported as theirs, never fail-closed; when refused, vLLM's compile cache is turned off instead.
INTERNAL = "_compile_cache"
INTERNAL_FILE = Path(__file__).resolve().parent / "compile_cache.hunk"


def not_internal(hunk_set) -> bool:
    """Whose refusals search where moved code went (issue 14): the users' sets. vllm-surgeon's own set may
    be refused on many releases (it then turns the compile cache off), and must never cost a start that."""
    return hunk_set.name != INTERNAL


# How a module of an applied set was patched in this process: one vocabulary for the log line and
# `applied()` (issue 8). A planned module moves from PENDING to AT_IMPORT when this process imports it.
AT_IMPORT = "at import"  # rewritten by the import hook as this process imported it
IN_PLACE = "in place"  # imported before the hook: its live functions were given the patched code
PENDING = "pending import"  # planned, not imported by this process yet: patched when it is
STATES = (AT_IMPORT, IN_PLACE, PENDING)


@dataclass(frozen=True)
class AppliedSet:
    """One set applied in this process: what `vllm_surgeon.applied()` returns and the log line says."""

    name: str
    path: str
    targets: tuple[str, ...]  # diff hunks: the function each landed in (module:Qualified.name)
    modules: dict[str, str]  # module -> "at import", "in place" or "pending import" (STATES)
    vllm_version: str | None
    pid: int
    process: str


@contextlib.contextmanager
def gc_paused():
    """No garbage collection while planning: parsing makes many objects, and in a vLLM process every
    full collection walks the ~600k objects vLLM and torch hold (it tripled the plan's time there)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def process_name() -> str:
    return multiprocessing.current_process().name


class RuntimeState:
    """The state `Runtime` keeps (set in its `__init__`), declared once for the parts it is split into:
    report.py (report and log) < cached.py (the code cache) < withdraw.py (in place, withdraw and retry)."""

    names: list[str]
    sets: list[HunkSet]
    internal: HunkSet | None
    load_errors: list[tuple[str, Exception]]
    plan: Plan | None
    error: Exception | None
    policy: str
    hash_sources: dict[str, str]
    status: dict[str, str]  # module -> one of STATES
    targets: dict[str, tuple[str, ...]]  # set name -> targets as located (diff hunks: functions)
    # Modules running patched code in this process: what runs, and how to undo it when it was
    # patched in place (None: at import; undone with _revert instead).
    live: dict[str, tuple[PatchedModule, Any]]
    cache_reason: str
    _tree: TreeReader
    _sources: dict[str, object]
    _cache_key: str | None
    _watch: set[str]
    _logged: bool
    _log_pending: bool
    _warnings: list[tuple[str, str, str]]  # (key, full, brief), said again briefly in forked children
    _full_plans: dict[tuple[str, ...], Plan]

    def _all_sets(self) -> list[HunkSet]:
        return self.sets + ([self.internal] if self.internal is not None else [])
