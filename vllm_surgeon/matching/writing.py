"""A hunk written in the target's layout (issue 10): its lines as ops over the target's lines,
chunk by chunk of lines that hold the same tokens in both layouts."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from vllm_surgeon.matching.edges import Region
from vllm_surgeon.matching.texts import Anchor, View
from vllm_surgeon.matching.tokens import Lines, Tok, blank, depth_between


@dataclass(frozen=True)
class Match:
    """The anchor found by structure: replace lines [start, end) of the target by `new`'s ops."""

    start: int
    end: int
    new: tuple[tuple[str, str], ...]  # (op, text) over the target's lines, as the engine's Placement


def written(lines: Sequence[str], start: int, end: int, ops: list[tuple[str, str]]) -> list[str]:
    """`lines` with [start, end) replaced as `ops` say (' ' keeps the next line, '-' drops it, '+' adds one)."""
    out, old = list(lines[:start]), start
    for op, text in ops:
        if op == "+":
            out.append(text)
        else:
            if op == " ":
                out.append(lines[old])
            old += 1
    return out + list(lines[end:])


def layout_ops(target: View, anchor: Anchor, p: int, r: Region, lo: int, hi: int) -> tuple[int, int, list[tuple[str, str]]] | str | None:
    """The hunk as ops over target lines, for the anchor at region `r` of the target (anchor hard
    token 0 at target hard token p, within lines [lo, hi)): chunks of lines that hold the same
    tokens in both layouts are kept, removed or (when they mix both) rewritten; `+` lines go in
    between chunks. A string says why it cannot be written there; None: the anchor's blank lines
    are code in the target."""
    hunk, hidx = anchor.hunk_lines, anchor.hunk_index
    t0, t1, k0, k1 = r.t0, r.t1, r.k0, r.k1
    cuts_a, cuts_t = _chunk_cuts(target, anchor, p, t0, t1, k0, k1)
    # Lines covered by some token (others are blank: the gaps between chunks).
    a_covered = _covered(len(anchor.lines), anchor.toks, anchor.where, 0, len(anchor.lines))
    t_covered = _covered(len(target.lines), target.toks, target.where, t0, t1 + 1, target.starts)
    ops: list[tuple[str, str]] = []
    start = _leading_gap(target, ops, list(hunk[: hidx[k0]]), t0, lo)
    if start is None:
        return None
    last_chunk = len(cuts_a) - 2
    for c in range(last_chunk + 1):
        a_lo, a_hi, t_lo, t_hi = cuts_a[c], cuts_a[c + 1], cuts_t[c], cuts_t[c + 1]
        # The chunk proper ends at its last covered line; blank lines after it are the gap.
        a_last = max(i for i in range(a_lo, a_hi) if a_covered[i])
        t_last = max(i for i in range(t_lo, t_hi) if t_covered[i - t0])
        h_lo, h_last, h_hi = hidx[a_lo], hidx[a_last], (hidx[a_hi] if a_hi <= k1 else hidx[k1] + 1)
        inside = hunk[h_lo : h_last + 1]
        edge = (c == 0 and r.glued_head) or (c == last_chunk and r.glued_tail)
        why = _chunk_ops(target, ops, inside, range(t_lo, t_last + 1), edge)
        if why is not None:
            return why
        if c < last_chunk:
            items = list(hunk[h_last + 1 : h_hi])
            blanks = t_hi - t_last - 1
            if any(op != "+" for op, _ in items) and not blanks and not _opens_block(target, target.where.starts[t_hi], inside=True):
                return None
            _gap_ops(target, ops, items, t_last + 1, blanks)
    # Trailing gap: blank lines below the anchor's last token, matched top-down.
    trail_items = list(hunk[hidx[k1] + 1 :])
    want = sum(1 for op, _ in trail_items if op != "+")
    have = 0
    while have < want and t1 + have + 1 < hi and blank(target.lines[t1 + have + 1]):
        have += 1
    if want and not have and any(not blank(line) for line in target.lines[t1 + 1 :]):
        return None
    _gap_ops(target, ops, trail_items, t1 + 1, have)
    return start, t1 + 1 + have, ops


def _chunk_cuts(target: View, anchor: Anchor, p: int, t0: int, t1: int, k0: int, k1: int) -> tuple[list[int], list[int]]:
    """Chunk boundaries (anchor lines, target lines): between compared tokens j-1 and j where both
    layouts break the line. Soft tokens between them go with j-1 (a closing bracket, a comma),
    opening brackets with j. Each list ends one past the region's last line."""
    a_toks, t_toks, a_hard, t_hard = anchor.toks, target.toks, anchor.hard, target.hard
    aw, tw = anchor.where, target.where
    cuts_a, cuts_t = [k0], [t0]
    for j in range(1, len(a_hard)):
        ca = _cut(a_toks, a_hard[j - 1].last, a_hard[j].first)
        ct = _cut(t_toks, t_hard[p + j - 1].last, t_hard[p + j].first)
        a_line, t_line = aw.of(a_toks[ca].start), tw.of(t_toks[ct].start)
        breaks = a_line > aw.of(a_toks[ca - 1].end - 1) and t_line > tw.of(t_toks[ct - 1].end - 1)
        if breaks and a_line > cuts_a[-1] and t_line > cuts_t[-1]:
            cuts_a.append(a_line)
            cuts_t.append(t_line)
    return cuts_a + [k1 + 1], cuts_t + [t1 + 1]


def _leading_gap(target: View, ops: list[tuple[str, str]], lead_items: list[tuple[str, str]], t0: int, lo: int) -> int | None:
    """The hunk lines before the anchor's first token over the blank target lines above it (matched
    bottom-up), appended to `ops`; the first target line they cover. None when the anchor has blank
    lines there and the target none: blank lines carry no code, but a formatter removes one only at
    the start of a block (or collapses several into one), and before the anchor's first line whether
    a block started there cannot be seen from the anchor, so the blank line must be there."""
    want = sum(1 for op, _ in lead_items if op != "+")
    have = 0
    while have < want and t0 - have - 1 >= lo and blank(target.lines[t0 - have - 1]):
        have += 1
    if want and not have:
        return None
    skip = want - have
    items = []
    for op, text in lead_items:  # anchor blank lines the target has no blank line for: nothing to keep or drop
        if op != "+" and skip:
            skip -= 1
            continue
        items.append((op, text))
    _gap_ops(target, ops, items, t0 - have, have)
    return t0 - have


def _chunk_ops(target: View, ops: list[tuple[str, str]], inside: Sequence[tuple[str, str]], span: range, edge: bool) -> str | None:
    """One chunk's target lines kept, removed, or (context and removed lines, or '+' lines, inside
    one chunk) rewritten as the hunk has them; why not, when such a chunk shares a line with code
    outside the anchor (`edge`)."""
    kinds = {op for op, _ in inside if op != "+"} if not any(op == "+" for op, _ in inside) else {"mixed"}
    if kinds == {" "}:
        ops.extend((" ", target.lines[i]) for i in span)
    elif edge:
        return "lines the hunk changes share a line with code outside its anchor in the new layout"
    elif kinds == {"-"}:
        ops.extend(("-", target.lines[i]) for i in span)
    else:
        ops.extend(("-", target.lines[i]) for i in span)
        ops.extend(("+", text) for op, text in inside if op != "-")
    return None


def _gap_ops(target: View, ops: list[tuple[str, str]], items: list[tuple[str, str]], first: int, blanks: int) -> None:
    """Anchor gap items (blank ' '/'-' lines and '+' lines) over the `blanks` blank target lines
    from `first`: each anchor blank line takes the next target one with its op, `+` lines go in
    where they are; target blank lines left over are kept (dropped if the hunk drops all its own)."""
    line, left = first, blanks
    dropped = [op for op, _ in items if op != "+"]
    for op, text in items:
        if op == "+":
            ops.append(("+", text))
        elif left:
            ops.append((op, target.lines[line]))
            line, left = line + 1, left - 1
    drop = bool(dropped) and all(op == "-" for op in dropped)
    ops.extend(("-" if drop else " ", target.lines[i]) for i in range(line, line + left))


def _opens_block(target: View, offset: int, inside: bool = False) -> bool:
    """Whether the code right before `offset` ends a block's header (`:`), where formatters drop
    blank lines; `inside`: or is inside brackets, where black drops them too."""
    k = bisect.bisect_left(target.starts, offset) - 1
    while k >= 0 and target.toks[k].kind == "comment":
        k -= 1
    if k < 0:
        return False
    t = target.toks[k]
    depth = depth_between(target.toks, k, True)
    return (t.text == ":" and t.kind == "op" and depth == 0) or (inside and depth > 0)


def _cut(toks: Sequence[Tok], prev_last: int, first: int) -> int:
    """The token a chunk that starts with compared token `first` begins with: opening parentheses
    right before it belong to it."""
    c = first
    while c - 1 > prev_last and toks[c - 1].text == "(" and toks[c - 1].kind == "op":
        c -= 1
    return c


def _covered(
    count: int, toks: Sequence[Tok], where: Lines, lo: int, hi: int, starts: Sequence[int] | None = None
) -> list[bool]:
    """For each line of [lo, hi): whether a token covers it (a multi-line string covers every line of it)."""
    covered = [False] * (hi - lo)
    # From the last token starting at or before line lo: a string may run on into it.
    first = max(0, bisect.bisect_right(starts, where.starts[lo]) - 1) if starts is not None else 0
    for t in toks[first:]:
        a, b = where.of(t.start), where.of(max(t.start, t.end - 1))
        if a >= hi:
            break
        for i in range(max(a, lo), min(b, hi - 1) + 1):
            covered[i - lo] = True
    return covered


def changed_span(start: int, ops: Sequence[tuple[str, str]]) -> tuple[int, int]:
    """The target lines [a, b) a match's ops remove (empty: where they insert), as the engine's diff
    path uses to find the function a diff hunk changes."""
    pos, first, last = start, None, None
    for op, _ in ops:
        if op == "-":
            first = pos if first is None else first
            last = pos + 1
            pos += 1
        elif op == "+":
            if first is None:
                first = last = pos
        else:
            pos += 1
    if first is None or last is None:
        return start, start
    return first, last
