"""This process's surgeon: which sets are enabled, the plan for them, and what has been applied.

The plan is made once per process, at the first import of `vllm` (or of any target module), or
when vLLM calls the general plugin, whichever comes first: every hunk of every enabled set is
checked against the sources on disk before any module is changed. `Runtime` is split along its
parts: report.py (report and log) < cached.py (the code cache) < withdraw.py (in place, withdraw
and retry) < this module (planning and the import hook); shared.py holds what they share.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.model import HunkFileError, HunkSet
from vllm_surgeon.core.refusal import Refusal, SurgeonError
from vllm_surgeon.core.source import TreeReader
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import PatchedModule, Plan
from vllm_surgeon.runtime.hook import SurgeonFinder, SurgeonLoader, install, new_module_spec, real_spec
from vllm_surgeon.runtime.shared import AT_IMPORT, INTERNAL, INTERNAL_FILE, LOCK, gc_paused, log, not_internal, process_name
from vllm_surgeon.runtime.warn_once import setup_logging, warn_once
from vllm_surgeon.runtime.withdraw import Withdrawing
from vllm_surgeon.sets.loader import UnknownSetError, load_file
from vllm_surgeon.sets.reader import OWN
from vllm_surgeon.sets.search import enabled_names, load
from vllm_surgeon.trees.installed import installed_form, installed_vllm, read_installed

_RUNTIME: Runtime | None = None


class Runtime(Withdrawing):
    """This process's surgeon: the enabled sets, their plan and the import hook (its other parts are its bases)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.sets: list[HunkSet] = []
        self.load_errors: list[tuple[str, Exception]] = []
        for name in names:
            try:
                self.sets.append(load(name))
            except (UnknownSetError, HunkFileError) as exc:
                self.load_errors.append((name, exc))
        self.internal = load_file(INTERNAL_FILE, INTERNAL, OWN) if self.sets else None
        self.plan: Plan | None = None
        self.hash_sources: dict[str, str] = {}
        self.error: Exception | None = None
        self.status: dict[str, str] = {}
        self.targets: dict[str, tuple[str, ...]] = {}  # set name -> targets as located (diff hunks: functions)
        self._logged = False
        self._log_pending = False
        self._pending: Plan | None = None  # the plan being applied in place, before it is kept
        self._warnings: list[tuple[str, str, str]] = []  # (key, full, brief), said again briefly in forked children
        self._sources: dict[str, object] = {}
        # Sources cached; forms for creations (issue 13); definitions only read by a refusal (issue 14).
        self._tree = TreeReader(self._read, installed_form, read_installed.definitions)
        self._cache_key: str | None = None
        self.cache_reason = "not looked up"
        self.policy = "fail"
        # Modules running patched code in this process: what runs, and how to undo it when it was
        # patched in place (None: at import; undone with _revert instead).
        self.live: dict[str, tuple[PatchedModule, Any]] = {}
        self._full_plans: dict[tuple[str, ...], Plan] = {}
        from vllm_surgeon.engine.paths import watch_names

        # A diff's paths become modules at plan time; until then every module they could be is watched.
        self._watch: set[str] = {"vllm"} | {m for s in self._all_sets() for m in set(s.modules) | watch_names(s)}
        self.finder = SurgeonFinder(lambda: self._watch, self._spec_for)
        install(self.finder)

    # -- planning -------------------------------------------------------------------------
    def ensure_planned(self) -> Plan:
        """Make the plan once; raise the stored error on every later call if it failed closed."""
        with LOCK:
            if self.error is not None:
                raise self.error
            if self.plan is None:
                try:
                    with gc_paused():
                        self._make_plan()
                except Exception as exc:
                    self.error = exc
                    self._watch = {"vllm"} | self._watch
                    raise
            assert self.plan is not None  # _make_plan sets it or raises
            return self.plan

    def _make_plan(self) -> None:
        """The plan for this process, in named steps: the failure policy, sets that did not load, the
        plan itself (cache or planned and patched in place, with fallbacks), then keeping and logging it."""
        setup_logging(log)
        self.policy = self._read_policy()
        self._report_load_errors()
        version, _ = installed_vllm()
        plan, refusals = self._plan_and_patch(version)
        if refusals:
            self._warn(refusals)
        self._warn_findings(plan)
        self._keep(plan)
        # A forked child inherits the patched modules and logs its own line, once its process
        # name is known: when vLLM calls the plugin there (multiprocessing names it after the fork).
        os.register_at_fork(after_in_child=self._forked)

    @staticmethod
    def _read_policy() -> str:
        """VLLM_SURGEON_ON_FAILURE; a setting vllm-surgeon does not understand stops the start."""
        try:
            policy = _settings.on_failure()
            _settings.code_cache()  # a typo in it must not leave the code cache on silently
            _settings.trusted_group()  # nor a group that does not exist be read as "no group"
        except _settings.SettingError as exc:
            raise SurgeonError(extra=str(exc)) from None
        return policy

    def _plan_and_patch(self, version: str | None) -> tuple[Plan, list[Refusal]]:
        """The plan from the code cache, else a plan whose already-imported modules were patched in
        place; with it the users' refusals (warn) still to report. A set that cannot be patched in
        place is left out and the rest planned again (`_in_place_failed` decides what that costs)."""
        sets = self._all_sets()
        cached = self._cached_plan(sets, version)
        if cached is not None:
            return cached, []
        while True:
            candidate = planner.plan(sets, self._tree, version, search_moves=not_internal)
            refusals = [r for r in candidate.refusals if r.set_name != INTERNAL]
            if refusals and self.policy == "fail":
                raise SurgeonError(refusals, {s.name: s for s in self.sets})
            live = self._patch_candidate(candidate)
            if live is None:
                self._store(candidate, sets, version)
                return candidate, refusals
            sets = [s for s in sets if s.name != live.set_name]
            self._in_place_failed(live)

    def _patch_candidate(self, candidate: Plan) -> Refusal | None:
        """Patch in place what `candidate` changes and this process imported; a refusal if it cannot be."""
        # Patching in place may import a module the plan changes or creates (a new module-level
        # `from pkg.new_module import X`): the hook serves it from this candidate plan.
        self._pending = candidate
        try:
            return self._patch_imported(candidate)
        finally:
            self._pending = None

    def _in_place_failed(self, refusal: Refusal) -> None:
        """A set could not be patched in place (and was left out): for the internal set, vLLM's compile
        cache is turned off instead; a user's set stops the start, or (warn) is reported."""
        if refusal.set_name == INTERNAL:
            self._compile_cache_off(refusal)
        elif self.policy == "fail":
            raise SurgeonError([refusal], {s.name: s for s in self.sets})
        else:
            self._warn([refusal])

    def _keep(self, plan: Plan) -> None:
        """Make `plan` this process's plan: what the hook serves, `applied()` reports and is logged."""
        internal = [r for r in plan.refusals if r.set_name == INTERNAL]
        if internal and self.sets:
            self._compile_cache_off(internal[0])
        self.plan = plan
        self.targets.update({r.hunk_set.name: r.located_targets for r in plan.results if r.hunks})
        self.hash_sources = {p.source.path: p.compiled.display for p in plan.modules.values()}
        self._watch = set(plan.modules)
        self._log_when_known()

    # -- the import hook ------------------------------------------------------------------
    def _spec_for(self, fullname: str, path: Any, target: Any):
        plan = self._pending if self._pending is not None else self.ensure_planned()
        patched = plan.modules.get(fullname)
        if patched is None:
            return None  # `importlib.reload` of a patched module comes here again, and is patched again
        spec = real_spec(fullname, path, target)
        if patched.created:  # a module a set creates: served as if installed, where its package is
            if spec is not None:
                raise SurgeonError(
                    extra=f"vllm-surgeon planned to create {fullname} at {patched.source.path}, but the import system "
                    f"now finds one at {spec.origin}; sys.path changed after vLLM started importing",
                )
            return new_module_spec(patched, self._imported, self._import_failed)
        if spec is None:
            return None
        if spec.origin != patched.source.path:
            raise SurgeonError(
                extra=f"vllm-surgeon planned {fullname} from {patched.source.path}, but the import system now finds "
                f"{spec.origin}; sys.path changed after vLLM started importing",
            )
        spec.loader = SurgeonLoader(spec.loader, patched, self._imported, self._import_failed)
        return spec

    def _imported(self, module: ModuleType, patched: PatchedModule) -> None:
        with LOCK:
            name = module.__name__
            self.live[name] = (patched, None)
            self.status[name] = AT_IMPORT
            current = self.plan.modules.get(name) if self.plan is not None else None
            if current is not patched and self.plan is not None:
                # A set was withdrawn while this module ran (a module it imported failed): bring it along.
                self._transition(self.plan)
            if self._logged and self.plan is not None:  # the applied line said `pending import` for it: say what became of it
                sets = [s.name for s in self.plan.accepted if s.name != INTERNAL and name in s.modules]
                if sets:
                    log.info("%s %s by the import hook (set %s) in pid %d (%s)", name, AT_IMPORT,
                             ", ".join(repr(n) for n in sets), os.getpid(), process_name())
            self._log_when_known()

    def sync(self) -> None:
        """The plugin's entry: plan if not done, and patch in place whatever was imported before the hook."""
        plan = self.ensure_planned()
        with LOCK, gc_paused():
            refusal = self._patch_imported(plan)
            if refusal is not None:
                self._withdraw(refusal)
                assert self.plan is not None  # _withdraw either raises or adopts a new plan
                refusal = self._patch_imported(self.plan)
                if refusal is not None:
                    raise SurgeonError([refusal], {s.name: s for s in self.sets})
            if self._log_pending:  # a forked child: its own line, and the warnings its parent said, in brief
                self._log_pending = False
                for key, full, brief in self._warnings:
                    warn_once(log, key, full, brief)
                self._log_applied()
            elif not self._logged:
                self._log_applied()


def source_for_hash(path: str, text: str) -> str:
    """What vLLM's compile-cache keying reads for `path` (see runtime/compile_cache.hunk): the
    patched text for a file vllm-surgeon patched in this process, else the text from disk."""
    current = _RUNTIME
    return text if current is None else current.hash_sources.get(path, text)


def runtime(create: bool = True) -> Runtime | None:
    """This process's runtime, made (and the hook installed) on first use when sets are enabled."""
    global _RUNTIME
    with LOCK:
        if _RUNTIME is None and create:
            names = enabled_names()
            if names:
                # The bootstrap's waiting finder has done its job whoever got here first (it, or
                # the vLLM plugin where vllm was imported some other way).
                boot = sys.modules.get(f"{__package__}._bootstrap")
                if boot is not None:
                    boot.disarm()
                _RUNTIME = Runtime(names)
        return _RUNTIME


def start() -> None:
    """The `.pth` bootstrap's entry, at the first `import vllm`: load the sets and plan, before vLLM runs.

    A refused set raises SurgeonError here (unless VLLM_SURGEON_ON_FAILURE=warn): `import vllm` fails.
    """
    current = runtime()
    if current is not None:
        current.ensure_planned()
