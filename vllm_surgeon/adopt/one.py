"""`vllm-surgeon adopt FILE::QUALNAME --target MODULE:QUALNAME --against SPEC`: one copy, named.

The replacement is read statically from FILE; the set is written only after the engine, given the
set and the release, produced exactly the adopted code (assemble.check).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vllm_surgeon.adopt import assemble
from vllm_surgeon.adopt.adoption import IDENTICAL, NEW, Adoption, Copy, adopt
from vllm_surgeon.adopt.patchfile import AdoptInputError, PatchFile, split_node_id
from vllm_surgeon.adopt.resolve import Resolver
from vllm_surgeon.core.model import HunkFileError, Origin, Target
from vllm_surgeon.trees.releases import Tree


@dataclass
class Outcome:
    """What the command says, its exit code, and the set to write (None: nothing)."""

    code: int
    message: str
    text: str | None = None
    adoption: Adoption | None = None


def parse_target(spec: str) -> Target:
    """`--target module:Qualified.name`; AdoptInputError naming the value when it is malformed."""
    try:
        target = Target.parse(spec, Origin("--target", 1))
    except HunkFileError as exc:
        raise AdoptInputError(f"--{exc.detail}") from None
    if target.qualname is None:
        raise AdoptInputError(f"--target {spec!r}: name the function, as module:Qualified.name "
                              "(e.g. vllm.v1.core.sched.scheduler:Scheduler.schedule)")
    return target


def adopt_one(node_id: str, target_spec: str, tree: Tree, out: Path, tops: frozenset[str] = frozenset()) -> Outcome:
    """Adopt the def `node_id` (FILE::QUALNAME) as `target_spec` in `tree`; AdoptInputError on bad input."""
    path, qualname = split_node_id(node_id)
    target = parse_target(target_spec)
    copy = Copy.named(PatchFile.read(path), qualname)
    resolver = Resolver(tree.read, frozenset({"vllm", target.module.split(".")[0]}) | tops)
    adoption = adopt(copy, target, resolver, tree.label)
    if adoption.verdict == IDENTICAL:
        return Outcome(0, f"identical: {copy.label} against {adoption.target} in {tree.label}: {adoption.reason}; "
                          "nothing to adopt: drop the monkey patch", adoption=adoption)
    if adoption.change is None:
        return Outcome(1, f"cannot adopt {copy.label} as {target}: {adoption.reason}", adoption=adoption)
    header = set_header(tree, [copy.label], adoption.notes)
    text = assemble.render([adoption.change], header)
    why = assemble.check(text, str(out), out.name.split(".")[0], tree.read, tree.version, [adoption.change])
    if why is not None:
        return Outcome(1, f"cannot adopt {copy.label} as {target}: {why}; nothing written", adoption=adoption)
    count = count_hunks(text)
    kind = "a new method" if adoption.verdict == NEW else f"{count} hunk{'s' if count != 1 else ''}"
    message = f"adopted {copy.label} as {adoption.target}: {kind}, checked against {tree.label}"
    return Outcome(0, message, text, adoption)


def set_header(tree: Tree, copies: list[str], notes: list[str]) -> list[str]:
    """The header of an adopted set: where it came from, the release it was checked against."""
    lines = [f"# adopted by `vllm-surgeon adopt`, checked against {tree.label}"]
    lines += [f"# from {label}" for label in copies[:20]]
    if len(copies) > 20:
        lines.append(f"# ... and {len(copies) - 20} more")
    lines += [f"# note: {note}" for note in dict.fromkeys(notes)]
    names = ", ".join(label.rpartition("::")[2] for label in copies[:3]) + (", ..." if len(copies) > 3 else "")
    lines.append(f"description: {names} adopted from a monkey patch (say what it does and why)")
    if tree.release:
        lines.append(f"written-against: {tree.release}")
    lines.append(f"# vllm: >={tree.version}   (uncomment and adjust: the versions this set is meant for)"
                 if tree.version else "# vllm: >=X.Y")
    return lines


def count_hunks(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("@@ "))
