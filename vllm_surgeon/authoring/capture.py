"""`new` and `capture`: editable copies of target functions, then the smallest hunk file for the edits.

`new NAME TARGET...` writes NAME.surgeon/<module>/<Qualified.name>.py (the function exactly as in
vLLM, indentation kept; a module target: NAME.surgeon/<module>/<module>.py, the whole module) and
NAME.surgeon/surgeon.json (the originals and where they came from).
`capture NAME` diffs each copy against its original and writes NAME.hunk, each hunk with just
enough context to be unique in its function, recording the vLLM version it was written against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_surgeon.authoring.drafts import ScopeOf, drafts, render_hunk_section, scope_finder
from vllm_surgeon.authoring.files import write_text
from vllm_surgeon.core.model import HunkFileError, Origin, Target
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.trees.releases import Tree

MANIFEST = "surgeon.json"


class WorkdirError(ValueError):
    """A bad `new`/`capture` request: unknown target, missing or existing files."""


def workdir_for(name: str, directory: str | None) -> Path:
    return Path(directory) if directory else Path(f"{name}.surgeon")


def new(
    name: str, targets: list[str], tree: Tree, spec: str | None, directory: Path, force: bool,
    copies: dict[str, str] | None = None, fields: dict[str, str] | None = None,
) -> list[Path]:
    """Write the editable copies (`copies`: their text, else the functions as in `tree`) and the manifest.

    Nothing is written unless every target is found, and nothing is left half-written (issue 13: a
    full disk left copies without surgeon.json): the manifest comes last, and on an error the files
    this call created are removed. With `force`, an existing work folder keeps its earlier targets
    and their copies, edited or not, and gains the new ones (issue 13: an edit was lost); a folder
    copied from another release is replaced only when none of its copies is edited.
    """
    if spec is not None and (spec == "latest" or spec.endswith("==latest")) and tree.release:
        spec = tree.release  # `capture` checks against the release copied, even once a newer one is out
    manifest: dict[str, Any] = {"name": name, "against": spec, "vllm_version": tree.version, "release": tree.release, "targets": []}
    earlier = _earlier(directory, force, manifest, tree)
    if earlier is not None:
        manifest = earlier
    if fields:
        manifest["fields"] = {k: v for k, v in fields.items() if k != "written-against"}
    kept = {entry["target"] for entry in manifest["targets"]}
    files: list[tuple[Path, str]] = []
    for spec_text in targets:
        entry, text = _copy_of(spec_text, tree, copies)
        if entry["target"] in kept:
            continue
        kept.add(entry["target"])
        manifest["targets"].append(entry)
        files.append((directory / entry["file"], text))
    _write_all(directory, files, json.dumps(manifest, indent=1) + "\n")
    return [directory / entry["file"] for entry in manifest["targets"]]


def _copy_of(spec_text: str, tree: Tree, copies: dict[str, str] | None) -> tuple[dict, str]:
    """The manifest entry of one target and the text of its copy; WorkdirError when it is not found.
    A module target copies the whole module (issue 15: the next step `rebase` suggests after a
    conflict at module scope named one, and `new` refused it)."""
    try:
        target = Target.parse(spec_text, Origin("<command line>", 1))
    except HunkFileError as exc:
        raise WorkdirError(f"{spec_text!r}: name a module, or a function or class in it as module:Qualified.name "
                           f"({exc.detail})") from None
    source = tree.read(target.module)
    if source is None:
        raise WorkdirError(f"{target.module}: no such module in {tree.label}")
    if target.qualname is None:
        text, line, relative = source.text if source.text.endswith("\n") else source.text + "\n", 1, f"{target.module}.py"
    else:
        index = ScopeIndex(source.text, source.path)
        scopes = index.find(target.qualname)
        if not scopes:
            raise WorkdirError(f"{target}: not defined in {source.path}{index.similar(target.qualname)}")
        if len(scopes) > 1:
            raise WorkdirError(f"{target}: defined {len(scopes)} times in {source.path}; a work copy needs exactly one")
        scope = scopes[0]
        text, line, relative = "\n".join(source.lines()[scope.start : scope.end]) + "\n", scope.start + 1, f"{target.qualname}.py"
    entry = {"target": str(target), "file": str(Path(target.module) / relative), "original": text, "line": line, "path": source.path}
    return entry, (copies or {}).get(spec_text, text)


def _earlier(directory: Path, force: bool, fresh: dict, tree: Tree) -> dict | None:
    """The manifest of an existing work folder whose targets `new --force` keeps; None to start afresh."""
    path = directory / MANIFEST
    if not path.exists():
        return None
    if not force:
        raise WorkdirError(f"{directory} already holds a work folder; capture it, remove it, or pass --force "
                           "to add targets to it (its copies, edited or not, are kept)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries = manifest["targets"]
        same = all(manifest.get(k) == fresh[k] for k in ("against", "vllm_version", "release"))
    except (ValueError, KeyError, TypeError):  # not a manifest `new` wrote: --force replaces it
        return None
    if same:
        return manifest
    edited = [str(directory / e["file"]) for e in entries if _edited(directory / e["file"], e["original"])]
    if edited:
        was = manifest.get("release") or manifest.get("vllm_version") or "another vLLM"
        raise WorkdirError(
            f"{directory} was copied from {was}, and these copies hold edits: {', '.join(edited)}; capture them first "
            f"(vllm-surgeon capture {fresh['name']}), or move them away, before copying from {tree.label}"
        )
    return None


def _edited(path: Path, original: str) -> bool:
    try:
        return path.read_text(encoding="utf-8").rstrip("\n") != original.rstrip("\n")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True  # cannot tell: never throw it away


def _write_all(directory: Path, files: list[tuple[Path, str]], manifest: str) -> None:
    """The copies, then the manifest; on any error the files and folders made here are removed again."""
    made: list[Path] = []
    try:
        for path, text in files:
            for folder in reversed([path.parent, *path.parent.parents]):
                if not folder.exists():
                    made.append(folder)
            if not path.exists():
                made.append(path)
            write_text(path, text)
        write_text(directory / MANIFEST, manifest)
    except BaseException:
        for path in reversed(made):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass
        raise


def write_copies(
    name: str, copies: dict[str, str], tree: Tree, spec: str | None, directory: Path, fields: dict[str, str] | None = None
) -> list[Path]:
    """A work folder as `new` makes it, from `tree`, but with the copies already edited (`rebase`'s
    merge, conflict markers and all): `capture` turns them into a set against `tree`, keeping the
    header `fields` (description, why, ...) of the set it came from."""
    return new(name, list(copies), tree, spec, directory, force=False, copies=copies, fields=fields)


@dataclass
class Captured:
    text: str  # the hunk file
    against: str | None  # the spec the copies were made from
    targets: int


def capture(name: str, directory: Path) -> Captured:
    """The hunk file for the edits made in `directory` (WorkdirError when there are none)."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise WorkdirError(f"{directory}: no {MANIFEST}; make the work folder with `vllm-surgeon new {name} TARGET...`")
    manifest = json.loads(manifest_path.read_text())
    version = manifest.get("vllm_version")
    release = manifest.get("release") or version
    kept = manifest.get("fields") or {}  # a rebase's work folder keeps the set's own header
    out = [f"{key}: {value}" for key, value in kept.items() if key != "vllm"] or [
        f"description: {name} (captured by vllm-surgeon capture; say what it does and why)"
    ]
    out += [
        *([f"written-against: {release}"] if release else []),
        f"vllm: {kept['vllm']}" if "vllm" in kept else
        f"# vllm: >={version}   (uncomment and adjust: the versions this set is meant for)" if version else "# vllm: >=X.Y",
        "",
    ]
    changed = 0
    for entry in manifest["targets"]:
        path = directory / entry["file"]
        if not path.is_file():
            raise WorkdirError(f"{path}: the work copy of {entry['target']} is missing")
        old = entry["original"].rstrip("\n").split("\n")
        new_text = path.read_text(encoding="utf-8")
        new = new_text.rstrip("\n").split("\n")
        if old == new:
            continue
        markers = [i for i, line in enumerate(new, 1) if line.startswith(("<<<<<<< ", "||||||| ", ">>>>>>> ")) or line == "======="]
        if markers:
            raise WorkdirError(
                f"{path}:{markers[0]}: conflict markers remain (lines {', '.join(map(str, markers))}): keep the code you "
                "want in each conflict, remove the marker lines, then run capture again"
            )
        compile_check(new_text, path)
        out += _sections(entry, old, new, path)
        changed += 1
    if not changed:
        raise WorkdirError(f"no edits in {directory}: edit the copies there, then run capture again")
    return Captured("\n".join(out).rstrip("\n") + "\n", manifest.get("against"), changed)


def _sections(entry: dict, old: list[str], new: list[str], path: Path) -> list[str]:
    """The `.hunk` sections of one edited copy: a function's or class's hunks all target it; a whole
    module's target the function or class each change is in, as `convert` does."""
    module, _, qualname = entry["target"].partition(":")
    size = len(old)

    def whole(i1: int, i2: int) -> tuple[str | None, int, int]:
        return (qualname, 0, size)

    scope_of: ScopeOf = whole if qualname else scope_finder(ScopeIndex(entry["original"], str(path)), size)
    try:
        found = drafts(old, new, scope_of)
    except ValueError as exc:
        raise WorkdirError(f"{path}: {exc}") from None
    out: list[str] = []
    for draft in found:
        target = entry["target"] if qualname else f"{module}:{draft.scope}" if draft.scope else module
        out += render_hunk_section(target, draft) + [""]
    return out


def compile_check(text: str, path: Path) -> None:
    """The edited copy must at least parse where it sits (an indented method: inside a block)."""
    import ast

    indented = text[:1] in (" ", "\t")
    try:
        ast.parse("if True:\n" + text if indented else text)
    except SyntaxError as exc:
        line = (exc.lineno or 1) - (1 if indented else 0)
        raise HunkFileError(Origin(str(path), max(line, 1)), f"the edited copy does not parse: {exc.msg}") from None
