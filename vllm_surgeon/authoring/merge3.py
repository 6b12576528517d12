"""A line-based three-way merge (base, ours, theirs), for `rebase`.

Regions where ours and theirs both still agree with base are kept; between them, a side that
changed wins, equal changes merge, and different changes to the same base lines conflict.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Conflict:
    """Base lines [base_start, base_end) changed differently by both sides."""

    base_start: int
    base_end: int
    base: list[str]
    ours: list[str]
    theirs: list[str]
    theirs_start: int  # 0-based line in theirs where the conflict begins
    merged_start: int  # 0-based line in the merged text where theirs' version was put


@dataclass
class Merge:
    lines: list[str]  # the merged text (conflicts resolved to theirs, for reference only)
    conflicts: list[Conflict]


def _sync_regions(base: Sequence[str], ours: Sequence[str], theirs: Sequence[str]):
    """Runs of base lines that both sides keep unchanged, as (base, ours, theirs) start/end triples."""
    a = difflib.SequenceMatcher(None, list(base), list(ours), autojunk=False).get_matching_blocks()
    b = difflib.SequenceMatcher(None, list(base), list(theirs), autojunk=False).get_matching_blocks()
    regions = []
    ia = ib = 0
    while ia < len(a) and ib < len(b):
        abase, amatch, alen = a[ia]
        bbase, bmatch, blen = b[ib]
        lo, hi = max(abase, bbase), min(abase + alen, bbase + blen)
        if lo < hi:
            regions.append((lo, hi, amatch + lo - abase, bmatch + lo - bbase))
        if abase + alen < bbase + blen:
            ia += 1
        else:
            ib += 1
    regions.append((len(base), len(base), len(ours), len(theirs)))
    return regions


def merge3(base: Sequence[str], ours: Sequence[str], theirs: Sequence[str]) -> Merge:
    merged: list[str] = []
    conflicts: list[Conflict] = []
    iz = io = it = 0
    for zstart, zend, ostart, tstart in _sync_regions(base, ours, theirs):
        b, o, t = list(base[iz:zstart]), list(ours[io:ostart]), list(theirs[it:tstart])
        if b or o or t:
            ours_changed, theirs_changed = o != b, t != b
            if ours_changed and theirs_changed and o != t:
                conflicts.append(Conflict(iz, zstart, b, o, t, it, len(merged)))
                merged += t
            else:
                merged += o if ours_changed else t
        length = zend - zstart
        merged += list(base[zstart:zend])
        iz, io, it = zend, ostart + length, tstart + length
    return Merge(merged, conflicts)


def render_conflicts(merge: Merge, ours_label: str, base_label: str, theirs_label: str, context: int = 3) -> list[str]:
    """diff3-style blocks for each conflict, with a few lines of the merged text around it."""
    out = []
    for c in merge.conflicts:
        before = merge.lines[max(0, c.merged_start - context) : c.merged_start]
        after_start = c.merged_start + len(c.theirs)
        after = merge.lines[after_start : after_start + context]
        out.append(f"@@ conflict at line {c.theirs_start + 1} of {theirs_label} @@")
        out += [" " + line for line in before]
        out.append(f"<<<<<<< {ours_label}")
        out += c.ours
        out.append(f"||||||| {base_label}")
        out += c.base
        out.append("=======")
        out += c.theirs
        out.append(f">>>>>>> {theirs_label}")
        out += [" " + line for line in after]
    return out
