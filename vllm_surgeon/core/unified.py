"""Unified-diff hunks of two lists of lines: the one place that groups the changes and numbers the
`@@ -a,b +c,d @@` headers, for the diff files commands write and the upstream diffs guards show."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence


def hunks(a: Sequence[str], b: Sequence[str], context: int = 3, a_offset: int = 0,
          b_offset: int = 0) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Each hunk turning `a` into `b`: its `@@` header and its (op, line) pairs, op one of ' ', '-', '+'.
    `*_offset`: how many lines of the file come before each list's first line."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        lines: list[tuple[str, str]] = []
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                lines += [(" ", line) for line in a[x1:x2]]
                continue
            lines += [("-", line) for line in a[x1:x2]]
            lines += [("+", line) for line in b[y1:y2]]
        yield f"@@ -{_range(a_offset + i1, i2 - i1)} +{_range(b_offset + j1, j2 - j1)} @@", lines


def _range(start: int, count: int) -> str:
    # Unified format (`start` 0-based): an empty range names the line before it; a one-line range omits the count.
    if count == 0:
        return f"{start},0"
    return f"{start + 1}" if count == 1 else f"{start + 1},{count}"
