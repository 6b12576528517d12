"""Other packages beside vLLM in a checked tree: a set may change vllm-ascend, an LMCache connector,
transformers... (issue 6). `--against SPEC` names where vLLM is read from; every other package comes
from this environment, unless `--with DIST==VERSION` (repeatable) names a release of it, whose wheel is
downloaded (never installed) and read like vLLM's. Reports say where each package was read from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vllm_surgeon.core.source import ModuleSource, SourceReader, TreeReader, module_form
from vllm_surgeon.trees.installed import find_spec, read_installed
from vllm_surgeon.trees.releases import SpecError, Tree, download
from vllm_surgeon.trees.wheels import Wheel

_WITH = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


@dataclass
class _Source:
    """Where one group of top-level packages is read from."""

    label: str
    read: SourceReader
    tops: set[str] | None  # the top-level names it holds (None: any, the environment)


@dataclass
class PackageLog:
    """Which source each top-level package was read from, filled as modules are read."""

    used: dict[str, str] = field(default_factory=dict)

    def lines(self, vllm_label: str) -> list[str]:
        return [f"{top}: {label}" for top, label in sorted(self.used.items())]


def _tree_tops(tree: Tree) -> set[str] | None:
    """Top-level packages the --against tree holds (None: the environment itself)."""
    location = Path(tree.location)
    if tree.read is read_installed:
        return None
    if location.is_file() and location.suffix == ".whl":
        return Wheel(location).tops()
    if location.is_dir():
        return {p.name for p in location.iterdir() if (p / "__init__.py").is_file() or p.is_dir() and p.name.isidentifier()} | {
            p.stem for p in location.glob("*.py")
        }
    return {"vllm"}


def _environment_label(top: str) -> str:
    spec = find_spec(top)
    where = ""
    if spec is not None:
        where = list(spec.submodule_search_locations)[0] if spec.submodule_search_locations else (spec.origin or "")
    version = None
    try:
        from importlib.metadata import packages_distributions, version as dist_version

        dists = packages_distributions().get(top) or []
        if dists:
            version = f"{dists[0]} {dist_version(dists[0])}"
    except Exception:  # metadata is best effort: the label only
        version = None
    return f"the environment ({version or top}, {where or 'not installed'})"


def compose(tree: Tree, withs: list[str] | None = None) -> Tree:
    """`tree` for vLLM (and whatever else it holds), other packages from `withs` or the environment."""
    sources: list[_Source] = []
    for spec in withs or []:
        match = _WITH.match(spec)
        if match is None:
            raise SpecError(f"--with {spec!r}: expected DIST==VERSION, e.g. --with transformers==4.56.0")
        path = download(match.group(1), match.group(2))
        archive = Wheel(path)
        sources.append(_Source(f"{match.group(1)} {match.group(2)} (wheel {path.name})", archive.reader(), archive.tops()))
    tops = _tree_tops(tree)
    if tops is None and not sources:
        return tree  # the installed environment: everything is read from it already
    log = PackageLog()
    primary = _Source(tree.label, tree.read, tops)
    # Named releases first (they say exactly which), then the --against tree, then the environment.
    chain = sources + [primary] + ([_Source("", read_installed, None)] if tops is not None else [])

    def holder(module: str) -> _Source | None:
        top = module.split(".", 1)[0]
        return next((s for s in chain if s.tops is None or top in s.tops), None)

    def read(module: str) -> ModuleSource | None:
        source = holder(module)
        if source is None:
            return None
        found = source.read(module)
        top = module.split(".", 1)[0]
        if found is not None and top not in log.used and source is not primary:
            log.used[top] = source.label or _environment_label(top)
        return found

    def form(module: str) -> str | None:
        source = holder(module)
        return None if source is None else module_form(source.read, module)

    # The --against tree's definitions are what a refusal searches for a target gone from its module (issue 14).
    definitions = tree.read.definitions if isinstance(tree.read, TreeReader) else None
    composed = Tree(tree.label, tree.version, TreeReader(read, form, definitions), tree.location, tree.dist)
    composed.packages = log  # type: ignore[attr-defined]
    return composed
