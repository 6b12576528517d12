"""The `sys.meta_path` hook: claims only the modules enabled sets change, and runs their patched code.

Modeled on typeguard's `_importhook.py`: the real spec comes from the other finders (so editable
installs and zip imports keep working); only its loader is wrapped.
"""

from __future__ import annotations

import linecache
import sys
from collections.abc import Callable
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from vllm_surgeon.core.lines import lines_with_ends
from vllm_surgeon.engine.results import PatchedModule
from vllm_surgeon.trees.installed import other_finders


def register_source(patched: PatchedModule) -> None:
    """Let tracebacks and `inspect` read the patched text (mtime None: `checkcache` keeps it)."""
    display = patched.compiled.display  # ends with one newline: "".join(lines) == display
    lines = lines_with_ends(display)  # never str.splitlines: U+2028 and \x0c stay inside a line
    linecache.cache[patched.source.path] = (len(display), None, lines, patched.source.path)


# What module_from_spec sets before exec_module runs: kept when a failed execution is cleared.
_IMPORT_ATTRS = frozenset(("__name__", "__loader__", "__package__", "__spec__", "__path__", "__file__", "__cached__"))

OnFail = Callable[[ModuleType, PatchedModule, Exception], "PatchedModule | None"]


def run_withdrawing(module: ModuleType, patched: PatchedModule, on_fail: OnFail | None) -> PatchedModule | None:
    """Execute `patched` in `module`. If it raises, `on_fail` decides: it raises (the set stops vLLM, or
    the error is not the patched code's), or it names what to run instead, in a cleared namespace: the
    code without the failed set, or (None) nothing of ours (issue 7 item 4). What ran, or None."""
    current: PatchedModule | None = patched
    while current is not None:
        register_source(current)
        try:
            exec(current.compiled.code, module.__dict__)
        except Exception as exc:
            if on_fail is None:
                raise
            current = on_fail(module, current, exc)
            for name in [n for n in module.__dict__ if n not in _IMPORT_ATTRS]:
                del module.__dict__[name]
            continue
        return current
    linecache.cache.pop(patched.source.path, None)  # nothing patched runs: the file on disk is what tracebacks show
    return None


class SurgeonLoader(Loader):
    """Wraps the real loader: executes the patched code, delegates everything else to it.

    A Loader (what ModuleSpec.loader is typed as): its legacy `load_module` runs exec_module, so
    even that path runs the patched code rather than the base loader's."""

    def __init__(
        self, base: Any, patched: PatchedModule, on_exec: Callable[[ModuleType, PatchedModule], None],
        on_fail: OnFail | None = None,
    ) -> None:
        self._base = base
        self._patched = patched
        self._on_exec = on_exec
        self._on_fail = on_fail

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._base, "create_module", None)
        return create(spec) if create is not None else None

    @property
    def base(self) -> Any:
        """The real loader this one wraps."""
        return self._base

    def exec_module(self, module: ModuleType) -> None:
        """Run the patched code (see run_withdrawing); with every set withdrawn, the module's own code."""
        ran = run_withdrawing(module, self._patched, self._on_fail)
        if ran is not None:
            self._patched = ran
            self._on_exec(module, ran)
            return
        module.__loader__ = self._base
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._base
        self._base.exec_module(module)

    def get_code(self, fullname: str):
        return self._patched.compiled.code

    def get_source(self, fullname: str) -> str:
        return self._patched.compiled.display

    def is_package(self, fullname: str) -> bool:
        return self._base.is_package(fullname)

    def __getattr__(self, name: str) -> Any:  # get_filename, get_data, get_resource_reader, ...
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return f"<vllm-surgeon loader for {self._patched.source.module} ({', '.join(self._patched.sets)}) over {self._base!r}>"


class NewModuleLoader(Loader):
    """Loads a module that a set creates (`--- /dev/null`): no file on disk, its text is in linecache."""

    def __init__(
        self, patched: PatchedModule, on_exec: Callable[[ModuleType, PatchedModule], None], on_fail: OnFail | None = None
    ) -> None:
        self._patched = patched
        self._on_exec = on_exec
        self._on_fail = on_fail

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Run the created module (see run_withdrawing). Without the set that created it the module does
        not exist: importing it then fails as it would without the set."""
        ran = run_withdrawing(module, self._patched, self._on_fail)
        if ran is not None:
            self._patched = ran
            self._on_exec(module, ran)
            return
        raise ModuleNotFoundError(
            f"No module named {module.__name__!r} (vllm-surgeon withdrew the set that creates it)", name=module.__name__
        )

    def get_code(self, fullname: str):
        return self._patched.compiled.code

    def get_source(self, fullname: str) -> str:
        return self._patched.compiled.display

    def get_filename(self, fullname: str) -> str:
        return self._patched.source.path

    def is_package(self, fullname: str) -> bool:
        return self._patched.source.path.replace("\\", "/").endswith("/__init__.py")

    def __repr__(self) -> str:
        return f"<vllm-surgeon loader for new module {self._patched.source.module} ({', '.join(self._patched.sets)})>"


def new_module_spec(
    patched: PatchedModule, on_exec: Callable[[ModuleType, PatchedModule], None], on_fail: OnFail | None = None
) -> ModuleSpec:
    """The spec of a created module: `__file__` is where it would sit inside its package."""
    loader = NewModuleLoader(patched, on_exec, on_fail)
    package = loader.is_package(patched.source.module)
    spec = ModuleSpec(patched.source.module, loader, origin=patched.source.path, is_package=package)
    if package:  # a package the set creates: its modules are served by the hook as well
        spec.submodule_search_locations = [patched.source.path.replace("\\", "/").rsplit("/", 1)[0]]
    spec.has_location = True
    return spec


class SurgeonFinder:
    """First on `sys.meta_path`; answers only for watched module names, in O(1) otherwise."""

    _vllm_surgeon_finder = True
    _vllm_surgeon_hook = True

    def __init__(self, watch: Callable[[], set[str]], spec_for: Callable[[str, Any, Any], ModuleSpec | None]) -> None:
        self._watch = watch
        self._spec_for = spec_for

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname not in self._watch():
            return None
        return self._spec_for(fullname, path, target)

    def invalidate_caches(self) -> None:
        pass


def real_spec(fullname: str, path: Any, target: Any) -> ModuleSpec | None:
    """The spec the other finders give for `fullname`."""
    for finder in other_finders():
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec = find(fullname, path, target) if target is not None else find(fullname, path)
        if spec is not None:
            return spec
    return None


def install(finder: SurgeonFinder) -> None:
    if not any(getattr(f, "_vllm_surgeon_hook", False) for f in sys.meta_path):
        sys.meta_path.insert(0, finder)
