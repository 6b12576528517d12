"""Which hunk is behind a failure of patched code, and the refusal that says so (issue 7 items 4 and 6).

Patched code is compiled with its lines numbered past the end of the file on disk (see _linemap),
and every such line knows the set and hunk-file line that wrote it (`Compiled.blame`). A traceback
through a patched line, or a unit that cannot be patched in place, therefore names the set that
actually failed, not merely the last set that touched the module.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Sequence

from vllm_surgeon.core.model import HunkSet, Origin
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.engine.linemap import Unit
from vllm_surgeon.engine.results import PatchedModule

Blame = tuple[str, str, int]  # (set name, hunk file, line in it)


class Culprit:
    """The innermost frame of a traceback on a patched line: who wrote it, where it is, its text."""

    def __init__(self, blame: Blame, patched: PatchedModule, line: int) -> None:
        self.blame = blame
        self.patched = patched
        lines = patched.compiled.display.split("\n")
        self.text = lines[line - 1].strip() if 0 < line <= len(lines) else ""


def in_traceback(exc: BaseException, modules: Iterable[PatchedModule]) -> Culprit | None:
    """Where `exc` left patched code of one of `modules` (innermost first), and who wrote that line.

    Line texts come from the patched display, not linecache: in place, the module's patched text is
    registered only once every change has been made.
    """
    by_path = {m.source.path: m for m in modules}
    for frame in reversed(traceback.extract_tb(exc.__traceback__, limit=None)):
        patched = by_path.get(frame.filename)
        if patched is not None and frame.lineno is not None:
            blame = patched.compiled.blame.get(frame.lineno)
            if blame is not None:
                return Culprit(blame, patched, frame.lineno)
    return None


def in_unit(patched: PatchedModule, unit: Unit | None) -> Blame | None:
    """Who wrote the first line of `unit` that a hunk wrote (None: nothing known)."""
    if unit is None or not unit.tail_line:
        return None
    for line in range(unit.tail_line, unit.tail_line + (unit.end - unit.start)):
        blame = patched.compiled.blame.get(line)
        if blame is not None:
            return blame
    return None


def _hunk_at(hunk_set: HunkSet | None, line: int):
    """The hunk of `hunk_set` whose lines hold `line` of its file (the last one starting at or above it)."""
    if hunk_set is None:
        return None
    above = [h for h in hunk_set.hunks if h.origin.line <= line]
    return max(above, key=lambda h: h.origin.line) if above else (hunk_set.hunks[0] if hunk_set.hunks else None)


def refusal(
    reason: Reason, blame: Blame | None, patched: PatchedModule, sets: Sequence[HunkSet], detail: str,
    vllm_version: str | None,
) -> Refusal:
    """A refusal of the set `blame` names; with nothing known, of the last set that changed the module."""
    by_name = {s.name: s for s in sets}
    if blame is None:
        name = patched.sets[-1]
        hunk_set = by_name.get(name)
        hunk = next((h for h in hunk_set.hunks if h.target.module == patched.source.module), None) if hunk_set else None
        origin = hunk.origin if hunk is not None else Origin(hunk_set.path if hunk_set else name, 1)
    else:
        name, path, line = blame
        hunk = _hunk_at(by_name.get(name), line)
        origin = Origin(path, line)
    target = str(hunk.target) if hunk is not None else patched.source.module
    return Refusal(reason, name, origin, target, detail, vllm_version, patched.source.path)


def describe(exc: BaseException, culprit: Culprit | None) -> str:
    """`NameError: name 'x' is not defined`, and the patched line it was raised on."""
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if culprit is not None and culprit.text:
        what += f" at the patched line `{culprit.text}`"
    return what
