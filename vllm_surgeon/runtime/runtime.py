"""This process's surgeon: which sets are enabled, the plan for them, and what has been applied.

The plan is made once per process, at the first import of `vllm` (or of any target module), or
when vLLM calls the general plugin, whichever comes first: every hunk of every enabled set is
checked against the sources on disk before any module is changed.
"""

from __future__ import annotations

import contextlib
import gc
import linecache
import logging
import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.model import HunkFileError, HunkSet
from vllm_surgeon.core.refusal import Reason, Refusal, SurgeonError
from vllm_surgeon.core.source import TreeReader
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.names import judge
from vllm_surgeon.engine.results import PatchedModule, Plan, SetResult
from vllm_surgeon.runtime import blame as _blame
from vllm_surgeon.runtime.hook import SurgeonFinder, SurgeonLoader, install, new_module_spec, real_spec, register_source
from vllm_surgeon.runtime.warn_once import setup_logging, warn_once
from vllm_surgeon.sets.loader import UnknownSetError, load_file
from vllm_surgeon.sets.reader import OWN
from vllm_surgeon.sets.search import enabled_names, load
from vllm_surgeon.trees.installed import installed_form, installed_vllm, read_installed

log = logging.getLogger("vllm_surgeon")
_LOCK = threading.RLock()
_RUNTIME: Runtime | None = None
# vllm-surgeon's own set (see runtime/compile_cache.hunk): stacked after the user's sets, never
# reported as theirs, never fail-closed; when refused, vLLM's compile cache is turned off instead.
INTERNAL = "_compile_cache"


def _not_internal(hunk_set: HunkSet) -> bool:
    """Whose refusals search where moved code went (issue 14): the users' sets. vllm-surgeon's own set may
    be refused on many releases (it then turns the compile cache off), and must never cost a start that."""
    return hunk_set.name != INTERNAL
_INTERNAL_FILE = Path(__file__).resolve().parent / "compile_cache.hunk"


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


def _process_name() -> str:
    return multiprocessing.current_process().name


class Runtime:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.sets: list[HunkSet] = []
        self.load_errors: list[tuple[str, Exception]] = []
        for name in names:
            try:
                self.sets.append(load(name))
            except (UnknownSetError, HunkFileError) as exc:
                self.load_errors.append((name, exc))
        self.internal = load_file(_INTERNAL_FILE, INTERNAL, OWN) if self.sets else None
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

    def _all_sets(self) -> list[HunkSet]:
        return self.sets + ([self.internal] if self.internal is not None else [])

    # -- planning -------------------------------------------------------------------------
    def ensure_planned(self) -> Plan:
        """Make the plan once; raise the stored error on every later call if it failed closed."""
        with _LOCK:
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

    def _report_load_errors(self) -> None:
        """Sets that could not be found or parsed: stop the start, or (warn) say so and go on without them."""
        if not self.load_errors:
            return
        text = "\n".join(f"vllm-surgeon {getattr(e, 'verb', 'cannot load')} hunk set {n!r}: {e}" for n, e in self.load_errors)
        if self.policy == "fail":  # the advice a refusal gives (SurgeonError), for sets refused before planning
            raise SurgeonError(extra=text + "\nNothing of the enabled sets was applied. Fix or disable these "
                               "(VLLM_SURGEON_HUNKS), or set VLLM_SURGEON_ON_FAILURE=warn to run without them.")
        names = ", ".join(repr(n) for n, _ in self.load_errors)
        self._say(
            text,
            f"{{process}}: VLLM_SURGEON_ON_FAILURE=warn, running without these sets ({names}), which cannot be "
            f"loaded:\n{text}\nOther vLLM processes of this run say this in one line.",
            f"{{process}}: running without these sets ({names}; VLLM_SURGEON_ON_FAILURE=warn): they cannot "
            "be loaded; the full message was logged by {where}",
        )

    def _plan_and_patch(self, version: str | None) -> tuple[Plan, list[Refusal]]:
        """The plan from the code cache, else a plan whose already-imported modules were patched in
        place; with it the users' refusals (warn) still to report. A set that cannot be patched in
        place is left out and the rest planned again (`_in_place_failed` decides what that costs)."""
        sets = self._all_sets()
        cached = self._cached_plan(sets, version)
        if cached is not None:
            return cached, []
        while True:
            candidate = planner.plan(sets, self._tree, version, search_moves=_not_internal)
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

    def _forked(self) -> None:
        self._log_pending = True

    def _log_when_known(self) -> None:
        """Log the applied line as soon as a module of a set is patched in this process (imported or
        in place), or when the plugin runs, whichever comes first; a module patched later gets a line
        of its own. So every process where a set takes effect says so (a Ray actor that imports one
        target and never calls vLLM's plugins too), in the words `applied()` uses."""
        if self._logged or self.plan is None:
            return
        if any(m in self.status for s in self.plan.accepted if s.name != INTERNAL for m in s.modules):
            self._log_applied()

    def _log_applied(self) -> None:
        """The one line per applied set that every process logs: what, where, which process."""
        self._logged = True
        for info in self.applied():
            how = ", ".join(f"{m} {state}" for m, state in info.modules.items())
            log.info(
                "applied set %r (%s) in pid %d (%s), vLLM %s: %s [%s]",
                info.name, info.path, info.pid, info.process, info.vllm_version or "unknown",
                ", ".join(info.targets), how,
            )

    # -- the on-disk code cache -----------------------------------------------------------
    def _read(self, module: str):
        if module not in self._sources:
            self._sources[module] = read_installed(module)
        return self._sources[module]

    def _cached_plan(self, sets: list[HunkSet], version: str | None) -> Plan | None:
        """The plan from the code cache, when nothing it changes is imported yet (the bootstrap's case)."""
        from vllm_surgeon.engine.paths import resolve
        from vllm_surgeon.runtime.cache import CodeCache, key, planned_modules

        if not _settings.code_cache():
            self.cache_reason = "off (VLLM_SURGEON_CODE_CACHE=0)"
            return None
        if any(s.kind == "py" for s in sets):
            # A transform is Python: what it makes may depend on helper modules it imports, files it reads,
            # libcst's version. No key covers all that, and a stale module is worse than a slower start
            # (issue 13: a changed helper was served stale), so plans with a .py set are never cached.
            self.cache_reason = "not used: a .py set runs code the cache key cannot cover"
            return None
        try:
            cache = CodeCache()
        except _settings.SettingError as exc:  # a cache directory that cannot be named: plan, and say so
            self.cache_reason = f"not used: {exc}"
            self._say(str(exc), f"{{process}}: {exc}; the code cache is not used (every vLLM process plans again)",
                      f"{{process}}: the code cache is not used ({exc.name} cannot be read); said in full by {{where}}")
            return None
        resolved = [resolve(s, self._tree, version) for s in sets]
        if any(r.refusals or r.created for r in resolved):
            self.cache_reason = "not used: a diff path does not resolve, or a set creates a module"
            return None
        sets = [r.hunk_set for r in resolved]
        modules = {m for s in sets for m in s.modules}
        if any(m in sys.modules for m in modules):
            self.cache_reason = "not used: a target module was imported before the hook (patched in place)"
            return None
        sources = {m: self._read(m) for m in modules}
        if any(v is None for v in sources.values()):
            self.cache_reason = "not used: a target module has no source"
            return None
        self._cache_key = key(sets, sources, version)
        if self._cache_key is None:
            self.cache_reason = "not used: a set was not read from a file"
            return None
        cached = cache.load(self._cache_key, sources, planned_modules(sets))
        self.cache_reason = cache.reason
        log.debug("code cache: %s", cache.reason)
        if cached is None:
            return None
        self.targets.update(cache.targets)
        return Plan([SetResult(s) for s in sets], cached, version)

    def _store(self, plan: Plan, sets: list[HunkSet], version: str | None) -> None:
        """Keep a plan every set of which applied, for the next process (never a partial one)."""
        from vllm_surgeon.runtime.cache import CodeCache

        if self._cache_key is None or plan.refusals or self.status or [s.name for s in sets] != [s.name for s in self._all_sets()]:
            return
        if plan.warnings:  # planned again at every start, so every start says them (_warn_findings)
            return
        cache = CodeCache()
        cache.reason = self.cache_reason
        cache.store(self._cache_key, plan.modules, {r.hunk_set.name: r.located_targets for r in plan.results})
        self.cache_reason = cache.reason
        log.debug("code cache: %s", cache.reason)

    def _compile_cache_off(self, refusal: Refusal) -> None:
        """Without the internal set, a patched model file could reuse a graph compiled from the
        unpatched code: turn vLLM's compile cache off instead (it is safe, only slower)."""
        if os.environ.get("VLLM_DISABLE_COMPILE_CACHE") != "1":
            os.environ["VLLM_DISABLE_COMPILE_CACHE"] = "1"
            log.warning(
                "this vLLM's compile-cache keying could not be taught about patched files (%s); "
                "set VLLM_DISABLE_COMPILE_CACHE=1 so no graph compiled from unpatched code is reused",
                refusal.summary(),
            )

    def _say(self, key: str, full: str, brief: str) -> None:
        """A warning in full once per run of vLLM, in one line in every other process (_warn_once)."""
        self._warnings.append((key, full, brief))
        warn_once(log, key, full, brief)

    def _warn(self, refusals: list[Refusal]) -> None:
        names = ", ".join(dict.fromkeys(repr(r.set_name) for r in refusals))
        error = SurgeonError(refusals, {s.name: s for s in self.sets}, running_without=True)
        first = refusals[0]
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        self._say(
            str(error),
            f"{{process}}: VLLM_SURGEON_ON_FAILURE=warn, running without the refused sets ({names}):\n{error}\n"
            "Other vLLM processes of this run say this in one line.",
            f"{{process}}: running without the refused sets ({names}; VLLM_SURGEON_ON_FAILURE=warn): "
            f"{first.title} at {first.origin} ({first.target}){more}; the full refusal was logged by {{where}}",
        )

    def _warn_findings(self, plan: Plan) -> None:
        """What applied sets' added lines read that static analysis says is gone but cannot be sure of
        (`name-gone`, `import-gone`: issue 14): the set runs, and every start says so (such a plan is not
        cached). Nothing is compared with another release here, so `attribute-gone` is never said (judge)."""
        for result in plan.results:  # no other release to compare with here (names.judge)
            judge(result, None, "", plan.vllm_version)
        warnings = [(name, f) for name, f in plan.warnings if name != INTERNAL]
        if not warnings:
            return
        text = "\n".join(f"  set {name!r}: {f.summary()}" for name, f in warnings)
        first = warnings[0][1]
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        self._say(
            "findings:" + text,
            f"{{process}}: applied, but an added line reads what this vLLM may not have "
            f"(`vllm-surgeon verify` shows it; the set still runs):\n{text}\nOther vLLM processes of this run say this in one line.",
            f"{{process}}: {first.kind} at {first.origin} ({first.name}){more}; logged in full by {{where}}",
        )

    def _patch_imported(self, plan: Plan) -> Refusal | None:
        """Patch in place the planned modules already imported; a refusal (and nothing changed) if one cannot be."""
        from vllm_surgeon.runtime.inplace import Transaction, patch_modules

        items = []
        for name, patched in plan.modules.items():
            module = sys.modules.get(name)
            if module is not None and name not in self.status:
                items.append((module, patched, Transaction()))
        if not items:
            return None
        try:
            patch_modules(items)
        except Exception as exc:  # LiveError, or the new code failing to execute
            for _, _, txn in reversed(items):
                txn.rollback()
            # Blame with the sets as planned (a diff's paths resolved to modules: issue 6).
            resolved = [r.hunk_set for r in plan.results]
            return self._in_place_refusal(exc, [patched for _, patched, _ in items], plan.vllm_version, resolved)
        for module, patched, txn in items:
            self._running(module, patched)
            self.status[module.__name__] = IN_PLACE
            self.live[module.__name__] = (patched, txn)
        return None

    @staticmethod
    def _running(module: ModuleType, patched: PatchedModule | None) -> None:
        """Tracebacks, `inspect` and the module's loader show what it now runs: `patched`, or (None) its file."""
        base = module.__loader__
        while isinstance(base, SurgeonLoader):
            base = base.base
        if patched is None:
            linecache.cache.pop(getattr(module, "__file__", None) or "", None)
            module.__loader__ = base
        else:
            register_source(patched)
            module.__loader__ = SurgeonLoader(base, patched, lambda m, p: None)
        spec = getattr(module, "__spec__", None)
        if spec is not None and isinstance(spec.loader, SurgeonLoader):
            spec.loader = module.__loader__

    def _in_place_refusal(
        self, exc: Exception, tried: list[PatchedModule], version: str | None, sets: list[HunkSet] | None = None
    ) -> Refusal:
        """The refusal of the set whose hunk could not be patched in place (not merely the module's last set)."""
        from vllm_surgeon.runtime.inplace import LiveError

        before = "was imported before vllm-surgeon's hook"
        if isinstance(exc, LiveError):
            patched = next((p for p in tried if p.source.module == exc.module), tried[0])
            return _blame.refusal(
                Reason.LIVE, _blame.in_unit(patched, exc.unit), patched, sets or self._planned_sets(),
                f"{patched.source.module} {before}, and {exc}. The .pth bootstrap (installed by pip, on unless "
                "VLLM_SURGEON_BOOTSTRAP=0) applies this set as modules are imported instead",
                version,
            )
        culprit = _blame.in_traceback(exc, tried)
        patched = culprit.patched if culprit is not None else tried[0]
        return _blame.refusal(
            Reason.RAISED, culprit.blame if culprit is not None else None, patched, sets or self._planned_sets(),
            f"{patched.source.module} {before}; run in place, its patched code raised {_blame.describe(exc, culprit)}",
            version,
        )

    # -- withdrawing a set whose code failed after some of it ran ------------------------
    def _planned_sets(self) -> list[HunkSet]:
        """The sets as planned (a diff's paths resolved to modules, issue 6), else as read."""
        return [r.hunk_set for r in self.plan.results] if self.plan is not None and self.plan.results else self._all_sets()

    def _import_failed(self, module: ModuleType, patched: PatchedModule, exc: Exception) -> PatchedModule | None:
        """A patched module raised while being imported (the SurgeonLoader's on_fail).

        The set whose line raised is withdrawn from every module, or (fail) vLLM stops naming it;
        returns what to run instead. An error not raised by a patched line is the module's own and
        goes on unchanged (an optional import failing, say), as it would without vllm-surgeon.
        """
        with _LOCK:
            if isinstance(exc, SurgeonError):
                raise exc
            culprit = _blame.in_traceback(exc, [p for p, _ in self.live.values()] + [patched])
            if culprit is None:
                raise exc
            version = self.plan.vllm_version if self.plan else None
            refusal = _blame.refusal(
                Reason.RAISED, culprit.blame, culprit.patched, self._planned_sets(),
                f"importing {module.__name__} with the patched code raised {_blame.describe(exc, culprit)}",
                version,
            )
            return self._withdraw(refusal, running=module.__name__)

    def _withdraw(self, refusal: Refusal, running: str | None = None) -> PatchedModule | None:
        """Take the refused set out of this process: (fail) stop, undoing what can be undone; (warn, or
        the internal set) plan again without it and bring every live module to the new plan. Returns
        the new plan's code for `running`, the module being imported."""
        assert self.plan is not None
        version = self.plan.vllm_version
        if refusal.set_name != INTERNAL and self.policy == "fail":
            error = SurgeonError([refusal], {s.name: s for s in self.sets})
            try:
                self._transition(Plan([], {}, version), skip=running)
            except SurgeonError as undo:
                error = SurgeonError([refusal], {s.name: s for s in self.sets}, extra=str(undo))
            watched = self._watch | set(self.plan.modules)
            self._adopt(Plan([], {}, version))  # applied() lists nothing: nothing is
            self.error = error
            self._watch = watched  # every later import of a target raises the same error
            raise error
        if refusal.set_name == INTERNAL:
            self._compile_cache_off(refusal)
        else:
            self._warn([refusal])
        keep = [s for s in self.plan.accepted if s.name != refusal.set_name]
        plan = planner.plan(keep, self._tree, version, search_moves=_not_internal)
        self._transition(plan, skip=running)
        self._adopt(plan)
        return plan.modules.get(running) if running is not None else None

    def _adopt(self, plan: Plan) -> None:
        self.plan = plan
        self.hash_sources = {p.source.path: p.compiled.display for p in plan.modules.values()}
        self._watch = set(plan.modules) | {"vllm"}

    def _transition(self, plan: Plan, skip: str | None = None) -> None:
        """Bring every live module but `skip` from the code it runs to `plan`'s, in place; a module
        that cannot be brought there stops vLLM (SurgeonError): no half-applied set may run."""
        from vllm_surgeon.runtime.inplace import Transaction, patch_in_place
        from vllm_surgeon.runtime.revert import revert

        for name, (old, txn) in list(self.live.items()):
            new = plan.modules.get(name)
            if name == skip:
                continue
            if new is not None and new.sets == old.sets:
                plan.modules[name] = old  # same sets, same sources: the same code
                continue
            module = sys.modules.get(name)
            try:
                if module is not None:
                    if txn is not None:
                        txn.rollback()
                    else:
                        patch_in_place(module, revert(self._full(old)), Transaction())
                del self.live[name]
                self.status.pop(name, None)
                linecache.cache.pop(old.source.path, None)
                if module is not None:
                    self._running(module, None)
                if module is not None and new is not None:
                    undo = Transaction()
                    patch_in_place(module, new, undo)
                    self._running(module, new)
                    self.live[name] = (new, undo)
                    self.status[name] = IN_PLACE
            except Exception as exc:
                raise SurgeonError(
                    extra=f"vllm-surgeon could not bring the already imported {name} back from set(s) "
                    f"{', '.join(old.sets)} in place ({type(exc).__name__}: {exc}); stopping, so that no "
                    "half-applied set runs"
                ) from None

    def _full(self, patched: PatchedModule) -> PatchedModule:
        """`patched` with its text and tree (a module from the code cache has neither): planned again."""
        if not patched.from_cache:
            return patched
        if patched.sets not in self._full_plans:
            sets = [s for s in self._all_sets() if s.name in patched.sets]
            version = self.plan.vllm_version if self.plan else None
            self._full_plans[patched.sets] = planner.plan(sets, self._tree, version, search_moves=_not_internal)
        return self._full_plans[patched.sets].modules[patched.source.module]

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
        with _LOCK:
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
                             ", ".join(repr(n) for n in sets), os.getpid(), _process_name())
            self._log_when_known()

    def sync(self) -> None:
        """The plugin's entry: plan if not done, and patch in place whatever was imported before the hook."""
        plan = self.ensure_planned()
        with _LOCK, gc_paused():
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

    # -- reporting ------------------------------------------------------------------------
    def _applied(self, hunk_set: HunkSet) -> AppliedSet:
        version = self.plan.vllm_version if self.plan else None
        return AppliedSet(
            name=hunk_set.name,
            path=hunk_set.path,
            targets=self.targets.get(hunk_set.name, hunk_set.targets),
            modules={m: self.status.get(m, PENDING) for m in hunk_set.modules},
            vllm_version=version,
            pid=os.getpid(),
            process=_process_name(),
        )

    def applied(self) -> list[AppliedSet]:
        if self.plan is None:
            return []
        return [self._applied(s) for s in self.plan.accepted if s.name != INTERNAL]


def source_for_hash(path: str, text: str) -> str:
    """What vLLM's compile-cache keying reads for `path` (see runtime/compile_cache.hunk): the
    patched text for a file vllm-surgeon patched in this process, else the text from disk."""
    current = _RUNTIME
    return text if current is None else current.hash_sources.get(path, text)


def runtime(create: bool = True) -> Runtime | None:
    """This process's runtime, made (and the hook installed) on first use when sets are enabled."""
    global _RUNTIME
    with _LOCK:
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
