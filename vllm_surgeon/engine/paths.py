"""Which module each file of a diff is, decided against the tree being read (installed, wheel, folder).

A diff names files by paths as they come: `a/vllm/v1/request.py`, `vllm/v1/request.py`,
`a/vllm/vllm/v1/request.py` (a monorepo holding vLLM in a folder), `/venv/.../site-packages/
vllm/v1/request.py`, `b/vllm_ascend/worker/model_runner_v1.py`. A path is the module named by its
longest suffix of folders whose file in the tree *is* that path (or that an earlier commit of the set
created): `vllm/tokenizers/x.py` is `vllm.tokenizers.x`, never the top-level `tokenizers.x` that
Hugging Face installs beside it, though that one exists too (real series at vLLM 0.11-0.14 touch
such files). A new file (`--- /dev/null`) goes in the package its longest suffix names. Two paths
of one section (`--- a/x.py` / `+++ b/y.py`) that name two modules are ambiguous. Files that cannot be
applied at import (not Python, tests, deletions, renames, binary, mode-only) refuse the set, each
named, unless the set's `skip:` patterns list them.

The same pass orders the set's hunks into *steps*: a series' commits, and a file's second section
inside one commit, each apply to the text the steps before them produced.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from vllm_surgeon.core.globs import compile_glob
from vllm_surgeon.core.model import AnchoredHunk, DiffFile, Hunk, HunkSet, Target, printable_path
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.core.source import module_form
from vllm_surgeon.sets.difffile import path_parts

_ROOTS = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class Candidate:
    module: str
    relative: str  # the path inside the tree's root, e.g. vllm/v1/request.py


def candidates(path: str, strip: int | None = None, root: str | None = None) -> list[Candidate]:
    """Modules a `.py` path may be: each suffix of its folders that spells a dotted module name.

    root: the set's `root:` field, a package whose folder the paths are relative to, as `cd
    site-packages/PKG && patch -pN` reads them (N: the quilt -pN, else 1); the path is then that one module.
    """
    raw = [p for p in path.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if root:
        return _under_root(raw, strip, root)
    if strip:
        raw = raw[strip:]
    for site in _ROOTS:  # an absolute installed path: only what follows site-packages is the package
        if site in raw[:-1]:
            raw = raw[len(raw) - raw[::-1].index(site) :]
    if not raw or not raw[-1].endswith(".py"):
        return []
    whole_from = 1 if len(raw) > 1 and raw[0] in ("a", "b") and not strip else 0
    found = []
    for k in range(len(raw)):
        suffix = raw[k:]
        names = _module_names(suffix)
        # A top-level single-file module (`six.py`) is the path only when nothing but a/ is before
        # it: `vllm/utils.py` is never the top-level `utils` some other package installs.
        if names and not (len(suffix) == 1 and k > whole_from):
            found.append(Candidate(".".join(names), "/".join(suffix)))
    return found


def _under_root(raw: list[str], strip: int | None, root: str) -> list[Candidate]:
    """A path relative to the folder of package `root` (strip: its -pN, else 1): that one module, if any."""
    raw = root.split(".") + raw[1 if strip is None else strip :]
    if not raw[-1].endswith(".py"):
        return []
    names = _module_names(raw)
    return [Candidate(".".join(names), "/".join(raw))] if names else []


def _module_names(parts: list[str]) -> list[str]:
    """The dotted names of folders then a `.py` file (`__init__.py`: the folder's package); [] when
    one is no identifier."""
    stem = parts[-1][: -len(".py")]
    names = parts[:-1] + ([] if stem == "__init__" else [stem])
    return names if names and all(n.isidentifier() and not keyword.iskeyword(n) for n in names) else []


def watch_names(hunk_set: HunkSet) -> set[str]:
    """Every module name a set's paths could resolve to (what the import hook watches before planning)."""
    names = {h.target.module for h in hunk_set.hunks if h.file is None}
    for f in hunk_set.files:
        names |= {c.module for path in f.paths for c in candidates(path, f.strip, hunk_set.root)}
    return names


# -- skip: patterns -----------------------------------------------------------------------------------

def skipped_by(path: str, patterns: tuple[str, ...]) -> str | None:
    """The first `skip:` pattern that matches `path` (None: not skipped).

    A pattern without `/` matches the file name anywhere (`*.md`); one with `/` matches the path
    from its start or from any folder in it (`tests/**` also skips `vllm/tests/x.py` of a monorepo).
    A trailing `/` means the folder's files (`docs/`, `vllm/legacy/`). Globs are matched in linear
    time (core/globs.py): a pattern of many `*` cannot stall a start (issue 13 item 17).
    """
    parts = path_parts(path)
    joined = "/".join(parts)
    for pattern in patterns:
        bare = pattern.strip("/")
        folder = pattern.endswith("/")
        if "/" not in bare:
            # `*.md`: a file name anywhere; `tests/`: a folder of that name anywhere.
            glob = compile_glob(bare)
            names = parts[:-1] if folder else parts[-1:]
            if any(glob.match(n) for n in names):
                return pattern
            continue
        glob = compile_glob(bare + "/**" if folder else bare)
        if glob.match(joined, from_any_folder=not pattern.startswith("/")):
            return pattern
    return None


# -- resolution ---------------------------------------------------------------------------------------

@dataclass
class Skipped:
    """A file of the set left out on purpose, and the pattern that says so."""

    file: DiffFile
    pattern: str


@dataclass
class Resolution:
    """A set with every hunk's module and step decided, or the refusals that keep it out."""

    hunk_set: HunkSet
    refusals: list[Refusal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # new module -> the path it would have


_WHY = {
    "delete": "deletes the file",
    "rename": "renames the file",
    "copy": "copies the file",
    "binary": "is a binary change",
    "mode": "changes only the file's mode",
}


def resolve(hunk_set: HunkSet, read: Callable, version: str | None = None) -> Resolution:
    """Map each diff file of `hunk_set` to a module of `read`'s tree; order hunks into steps."""
    if not hunk_set.files:
        return _hunk_creations(hunk_set, read, version)
    out = Resolution(hunk_set)
    modules: dict[int, str] = {}  # id(DiffFile) -> module
    new_found = _new_files(hunk_set, read)
    for f in hunk_set.files:
        pattern = next((p for p in (skipped_by(path, hunk_set.skip) for path in f.paths) if p is not None), None)
        if pattern is not None:
            out.skipped.append(Skipped(f, pattern))
            continue
        module = _module_of(f, hunk_set, read, out, new_found, version)
        if module is not None:
            modules[id(f)] = module
    out.hunk_set = replace(hunk_set, hunks=_in_steps(hunk_set, modules))
    return out


_SKIP_HINT = "; if the set leaves it out on purpose, list it in the set's `skip:` header field (e.g. skip: tests/**, csrc/**)"


def _new_files(hunk_set: HunkSet, read: Callable) -> dict[int, list | str]:
    """Where each new `.py` file of the set would be (see _new_module), by id(DiffFile). New
    packages (`__init__.py`) first, shallowest first: a new module may sit in a package the set creates."""
    packages: dict[str, str] = {}  # package the set creates -> its would-be directory
    new_found: dict[int, list | str] = {}
    news = [f for f in hunk_set.files if f.change == "new" and f.path.endswith(".py")]
    for f in sorted(news, key=lambda f: (not f.path.endswith("__init__.py"), f.path.count("/"))):
        new_found[id(f)] = found = _new_module(f, read, packages, hunk_set.root)
        if isinstance(found, list) and len(found) == 1 and found[0][0].relative.endswith("__init__.py"):
            packages[found[0][0].module] = found[0][1].rsplit("/", 1)[0]
    return new_found


def _module_of(
    f: DiffFile, hunk_set: HunkSet, read: Callable, out: Resolution, new_found: dict[int, list | str], version: str | None,
) -> str | None:
    """The module diff file `f` changes or creates (a created one is noted in `out.created`); None
    with a refusal in `out` when it is no Python module, not here, two modules, or already there."""

    def refuse(reason: Reason, detail: str) -> None:
        out.refusals.append(Refusal(reason, hunk_set.name, f.origin, f.name, detail, version,
                                    commit=f.commit.label() if f.commit else None))

    if f.change in _WHY:
        refuse(Reason.UNSUPPORTED_CHANGE, f"{f.name}: this diff {_WHY[f.change]}; vllm-surgeon only changes and "
               "creates Python modules" + _SKIP_HINT)
        return None
    if not any(path.endswith(".py") for path in f.paths):
        refuse(Reason.NOT_PYTHON, f"{f.name} is not a Python module: it cannot be applied at import" + _SKIP_HINT)
        return None
    found = new_found[id(f)] if f.change == "new" else _existing(f, read, out.created, hunk_set.root)
    if isinstance(found, str):
        refuse(Reason.PATH_NOT_FOUND, found + _SKIP_HINT)
        return None
    if len(found) > 1:
        refuse(Reason.PATH_AMBIGUOUS, f"the paths of {f.name} ({' and '.join(map(printable_path, f.paths))}) are two different modules "
               "here: " + ", ".join(f"{c.module} ({path})" for c, path in found) + "; make both paths name one of them")
        return None
    (candidate, where), = found
    if f.change == "new":
        existing = module_form(read, candidate.module)  # any importable form: `vllm/_C.abi3.so` too (issue 13)
        if existing is not None:
            refuse(Reason.MODULE_EXISTS, f"this diff creates {candidate.module}, which already exists here: {existing}")
            return None
        out.created[candidate.module] = where
    return candidate.module


def _in_steps(hunk_set: HunkSet, modules: dict[int, str]) -> tuple[Hunk, ...]:
    """The set's hunks with their modules, in steps: commits in order; inside a commit, a module's
    second file section comes after its first. Hunks of files skipped or refused are left out (the
    hunks of files that resolved are still checked: a refused set shows every problem at once)."""
    seen: dict[tuple[int, str], int] = {}
    section_step: dict[int, tuple[int, int]] = {}
    for f in hunk_set.files:
        if id(f) not in modules:
            continue
        commit = f.commit.number if f.commit else 0
        key = (commit, modules[id(f)])
        section_step[id(f)] = (commit, seen.get(key, 0))
        seen[key] = seen.get(key, 0) + 1
    order = {s: n for n, s in enumerate(sorted(set(section_step.values())))}
    hunks: list[Hunk] = []
    for h in hunk_set.hunks:
        if isinstance(h, AnchoredHunk) and h.file is not None:
            if id(h.file) not in modules:
                continue  # skipped, or refused above
            h = replace(h, target=Target(modules[id(h.file)]), step=order[section_step[id(h.file)]])
        hunks.append(h)
    return tuple(hunks)


def _hunk_creations(hunk_set: HunkSet, read: Callable, version: str | None) -> Resolution:
    """`.hunk` sections `@@ pkg.new_module @@ new`: where each module would sit (inside its package).

    Refused here, named for what is there, since the engine only sees sources (issue 13 items 2-3): a
    target module that has no source (an extension such as `vllm._C`, a folder without `__init__.py`),
    and a new module that exists in such a form or whose package is no regular package. A module with
    source is refused where its hunk is located."""
    out = Resolution(hunk_set)
    refused: set[str] = set()
    for h in hunk_set.hunks:
        module = h.target.module
        if module in out.created or module in refused:
            continue
        creates = isinstance(h, AnchoredHunk) and h.creates
        why = _cannot_create(module, read) if creates else _no_source(module, read)
        if why is not None:
            refused.add(module)
            out.refusals.append(Refusal(why[0], hunk_set.name, h.origin, str(h.target), why[1], version))
            continue
        package, _, name = module.rpartition(".")
        source = read(package) if creates and package else None
        if source is not None and source.path.replace("\\", "/").endswith("/__init__.py"):
            out.created[module] = source.path.replace("\\", "/").rsplit("/", 1)[0] + f"/{name}.py"
    if refused:
        out.hunk_set = replace(hunk_set, hunks=tuple(h for h in hunk_set.hunks if h.target.module not in refused))
    return out


def _no_source(module: str, read: Callable) -> tuple[Reason, str] | None:
    """Why a target module that is there has no source to patch (an extension, a namespace folder)."""
    if read(module) is not None:
        return None
    what = module_form(read, module)
    return None if what is None else (Reason.MODULE_NOT_FOUND, f"{module} is {what}: it has no Python source to patch")


def _cannot_create(module: str, read: Callable) -> tuple[Reason, str] | None:
    """Why `module` cannot be created in `read`'s tree though it has no source there (None: no such
    reason; a module with source, or no package at all, is refused where its hunk is located)."""
    if read(module) is not None:
        return None
    existing = module_form(read, module)
    if existing is not None:
        return Reason.MODULE_EXISTS, f"this hunk creates {module}, which already exists here: {existing}"
    package = module.rpartition(".")[0]
    source = read(package) if package else None
    if source is not None and source.path.replace("\\", "/").endswith("/__init__.py"):
        return None
    what = module_form(read, package) if package else None
    if what is None:
        return None
    return Reason.MODULE_NOT_FOUND, (f"cannot create {module}: {package} is {what}, not a package with an "
                                     "__init__.py to create a module in")


def _existing(f: DiffFile, read: Callable, created: dict[str, str], root: str | None) -> list[tuple[Candidate, str]] | str:
    """The module each of the file's paths names: its longest suffix that is a real module here, or one the
    set created in an earlier commit. Two paths naming two modules give both (ambiguous)."""
    found: dict[str, tuple[Candidate, str]] = {}
    every = []
    for path in f.paths:
        for c in candidates(path, f.strip, root):  # longest suffix first
            every.append(c)
            where = created.get(c.module)
            if where is None:
                source = read(c.module)
                where = source.path if source is not None else None
            if where is not None and _is(where, c.relative):
                found.setdefault(c.module, (c, where))
                break
    if found:
        return list(found.values())
    tried = ", ".join(dict.fromkeys(c.module for c in every)) or "none: no part of it is a module name"
    return f"{f.name}: no installed package has this file (modules tried: {tried})"


def _new_module(f: DiffFile, read: Callable, packages: dict[str, str], root: str | None) -> list[tuple[Candidate, str]] | str:
    """Where a new file's module would sit: in the package its longest suffix names that exists in the
    tree, or that the set creates."""
    tried = []
    for c in candidates(f.path, f.strip, root):  # longest suffix first
        package, _, name = c.module.rpartition(".")
        if not package:
            continue
        tried.append(package)
        if package in packages:
            folder = packages[package]
        else:
            source = read(package)
            parent = c.relative.rsplit("/", 2 if c.relative.endswith("/__init__.py") else 1)[0]
            if source is None and (form := module_form(read, package)) is not None:
                tried[-1] += f" ({form})"  # a folder without __init__.py: no package to create a module in
            if source is None or not _is(source.path, parent + "/__init__.py"):
                continue
            folder = source.path.replace("\\", "/").rsplit("/", 1)[0]
        return [(c, f"{folder}/{name}/__init__.py" if c.relative.endswith("__init__.py") else f"{folder}/{name}.py")]
    what = "a package" if f.path.endswith("__init__.py") else "a module"
    return (f"{f.name}: this diff creates {what}, but no installed package is where it would go "
            f"(packages tried: {', '.join(tried) or 'none'})")


def _is(real: str, relative: str) -> bool:
    real = real.replace("\\", "/")
    return real == relative or real.endswith("/" + relative)
