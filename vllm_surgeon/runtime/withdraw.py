"""The runtime's changes to live modules: patching in place what was imported before the hook, and
taking a set out of every module again when its code fails after some of it ran (withdraw and retry)."""

from __future__ import annotations

import linecache
import sys
from types import ModuleType

from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.refusal import Reason, Refusal, SurgeonError
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import PatchedModule, Plan
from vllm_surgeon.runtime import blame as _blame
from vllm_surgeon.runtime.cached import Caching
from vllm_surgeon.runtime.hook import SurgeonLoader, register_source
from vllm_surgeon.runtime.shared import IN_PLACE, INTERNAL, LOCK, not_internal


class Withdrawing(Caching):
    """In place, withdraw and retry: the part of `Runtime` that changes modules already running."""

    def _planned_sets(self) -> list[HunkSet]:
        """The sets as planned (a diff's paths resolved to modules, issue 6), else as read."""
        return [r.hunk_set for r in self.plan.results] if self.plan is not None and self.plan.results else self._all_sets()

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

    def _import_failed(self, module: ModuleType, patched: PatchedModule, exc: Exception) -> PatchedModule | None:
        """A patched module raised while being imported (the SurgeonLoader's on_fail).

        The set whose line raised is withdrawn from every module, or (fail) vLLM stops naming it;
        returns what to run instead. An error not raised by a patched line is the module's own and
        goes on unchanged (an optional import failing, say), as it would without vllm-surgeon.
        """
        with LOCK:
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
        plan = planner.plan(keep, self._tree, version, search_moves=not_internal)
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
            self._full_plans[patched.sets] = planner.plan(sets, self._tree, version, search_moves=not_internal)
        return self._full_plans[patched.sets].modules[patched.source.module]
