"""Finding an anchor's exact occurrences in a span of source lines, and the closest near-miss."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass


def occurrences(lines: Sequence[str], anchor: Sequence[str], lo: int, hi: int) -> list[int]:
    """Start indexes i in [lo, hi) where lines[i:i+len(anchor)] == anchor, all inside [lo, hi)."""
    n = len(anchor)
    first = anchor[0]
    found = []
    for i in range(lo, hi - n + 1):
        if lines[i] == first and list(lines[i : i + n]) == list(anchor):
            found.append(i)
    return found


@dataclass(frozen=True)
class NearMiss:
    """The lines in the searched span most like the anchor."""

    start: int  # 0-based index of the first found line
    found: tuple[str, ...]
    agree: int  # how many anchor lines appear unchanged in `found`


def closest(lines: Sequence[str], anchor: Sequence[str], lo: int, hi: int) -> NearMiss | None:
    """The window of [lo, hi) that best matches `anchor`, allowing a few lines more or fewer."""
    n = len(anchor)
    hi = min(hi, len(lines))
    if n == 0 or hi <= lo:
        return None
    wanted = {line.strip() for line in anchor if line.strip()}
    # Cheap pass: how many non-blank anchor lines each window holds, wherever they sit in it.
    scored = []
    for i in range(lo, max(lo + 1, hi - n + 1)):
        window = lines[i : i + n]
        hits = sum(1 for line in window if line.strip() in wanted)
        if hits:
            scored.append((hits, -i))
    if not scored:
        # No line agrees exactly: rank windows by lines that are merely alike (an edited line).
        for i in range(lo, max(lo + 1, hi - n + 1)):
            window = lines[i : i + n]
            alike = sum(
                1
                for a, b in zip(anchor, window)
                if a.strip() and difflib.SequenceMatcher(None, a.strip(), b.strip()).ratio() >= 0.6
            )
            if alike:
                scored.append((alike, -i))
    if not scored:
        return None
    scored.sort(reverse=True)
    # Most anchor lines matched wins; then the window closest to the anchor's own size; then lines
    # agreeing in place; then the closest text (ratio alone would prefer a shorter window that
    # leaves out the changed line).
    best: tuple[tuple, int, int] | None = None
    for _, neg_i in scored[:8]:
        start = -neg_i
        for size in range(max(1, n - 3), n + 4):
            if start + size > hi:
                continue
            window = list(lines[start : start + size])
            matcher = difflib.SequenceMatcher(None, list(anchor), window, autojunk=False)
            matched = sum(block.size for block in matcher.get_matching_blocks())
            aligned = sum(1 for a, b in zip(anchor, window) if a == b)
            key = (matched, -abs(size - n), aligned, matcher.ratio(), -start)
            if best is None or key > best[0]:
                best = (key, start, size)
    assert best is not None
    _, start, size = best
    found = tuple(lines[start : start + size])
    matcher = difflib.SequenceMatcher(None, list(anchor), list(found), autojunk=False)
    agree = sum(block.size for block in matcher.get_matching_blocks())
    return NearMiss(start, found, agree)


def side_by_side_diff(expected: Sequence[str], found: Sequence[str], expected_label: str, found_label: str) -> list[str]:
    """A unified diff of the whole expected anchor against the found lines ('-' expected, '+' found)."""
    return list(
        difflib.unified_diff(
            list(expected), list(found), expected_label, found_label, lineterm="", n=max(len(expected), len(found))
        )
    )
