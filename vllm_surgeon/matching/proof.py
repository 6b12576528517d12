"""The proof that a place holds the anchor's code (issue 10): the anchor's text in place of the
target's gives the target's syntax tree, and the hunk written in the new layout gives the tree of
the hunk applied to its own lines put there."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vllm_surgeon.matching.brackets import outsides
from vllm_surgeon.matching.edges import Region, check_edges, edge_brackets, find_region, region_edge
from vllm_surgeon.matching.texts import Anchor, View, snippet_tree
from vllm_surgeon.matching.tokens import indent
from vllm_surgeon.matching.writing import Match, changed_span, layout_ops, written


@dataclass(frozen=True)
class Place:
    """A place where the anchor's code is, laid out anew: with the hunk written there in that
    layout, or (match None) why it cannot be."""

    first: int  # target line of the anchor's first token
    at: int  # its offset in the target's text: two places on one line are two places
    match: Match | None
    why: str = ""

    @property
    def changed(self) -> tuple[int, int]:
        """The target lines the hunk changes here (for the function a diff hunk is in)."""
        if self.match is None:
            return self.first, self.first + 1
        return changed_span(self.match.start, self.match.new)


def prove(target: View, anchor: Anchor, p: int, lo: int, hi: int) -> Place | None:
    """Place the anchor at target hard token p: None when the code there is not the anchor's."""
    if not _indents_agree(target, anchor, p):
        return None
    # 1. The anchor's text in place of the target's: the same tree, or this is other code.
    proven = _proven_region(target, anchor, p, lo, hi)
    if proven is None:
        return None
    r, outside = proven
    hunk = anchor.hunk_lines
    h0, h1 = anchor.hunk_index[r.k0], anchor.hunk_index[r.k1]
    if r.glued_head and (hunk[h0][0] != " " or any(op == "+" for op, _ in hunk[:h0])):
        return Place(r.t0, r.t_start, None, "lines the hunk changes share a line with code before its anchor in the new layout")
    if r.glued_tail and (hunk[h1][0] != " " or any(op == "+" for op, _ in hunk[h1 + 1 :])):
        return Place(r.t0, r.t_start, None, "lines the hunk changes share a line with code after its anchor in the new layout")
    # 2. What the hunk means here: its own new side in place of the target's text.
    meant_texts = _meant_texts(anchor, r, h0, h1, outside)
    # 3. The same, written in the target's layout.
    placed = layout_ops(target, anchor, p, r, lo, hi)
    if placed is None:
        return None  # blank lines where the target has code: not the anchor's context
    if isinstance(placed, str):
        return Place(r.t0, r.t_start, None, placed)
    start, end, ops = placed
    lines = target.lines
    span = target.around(min(start, r.t0), max(end, r.t1 + 1))
    meant_trees = {snippet_tree(m, span, len(m) - len(lines)) for m in meant_texts}
    if len(meant_trees) > 1:
        return Place(r.t0, r.t_start, None, "what it does depends on where a parenthesis the formatter dropped was")
    (meant,) = meant_trees
    out = written(lines, start, end, ops)
    if snippet_tree(out, span, len(out) - len(lines)) != meant:
        return Place(r.t0, r.t_start, None, "the hunk cannot be written in the new layout without changing what it does")
    # (written == meant == None: the hunk's own lines are not valid Python, in either layout; the
    # engine refuses that as invalid-python, as it does for a hunk placed by its text.)
    return Place(r.t0, r.t_start, Match(start, end, tuple(ops)))


def _indents_agree(target: View, anchor: Anchor, p: int) -> bool:
    """A statement that starts a line in the target, if it starts a line of the anchor too, is
    indented alike there (cheap; step 1 of prove would refuse it anyway)."""
    a_toks, t_toks, tw, aw = anchor.toks, target.toks, target.where, anchor.where
    for j, h in enumerate(anchor.hard):
        tt, at = t_toks[target.hard[p + j].first], a_toks[h.first]
        t_line, a_line = target.lines[tw.of(tt.start)], anchor.lines[aw.of(at.start)]
        starts_both = tt.depth == 0 and tw.col(tt.start) == indent(t_line) and aw.col(at.start) == indent(a_line)
        if starts_both and t_line[: indent(t_line)] != a_line[: indent(a_line)]:
            return False
    return True


def _proven_region(target: View, anchor: Anchor, p: int, lo: int, hi: int) -> tuple[Region, list[tuple[str, str]]] | None:
    """The region whose text the anchor's stands for, with the readings of the text outside it
    ((pre, post) pairs) under which the anchor's text there gives the target's tree; None if none.

    Soft tokens at the edges: the target's are taken as far as they close (open) the same brackets
    as the anchor's do, whatever parentheses and commas the formatter added or dropped; or as the
    anchor has them (when a formatter's parentheses around the anchor skew the count). Trees are
    compared over the statements around the region: elsewhere the texts are the same."""
    a_toks, t_toks, a_hard, t_hard = anchor.toks, target.toks, anchor.hard, target.hard
    n = len(a_hard)
    firsts = region_edge(t_toks, t_hard[p].first, t_hard[p + n - 1].last, t_hard[p - 1].last + 1 if p else 0,
                   edge_brackets(a_toks, a_hard[0].first, a_hard[-1].last, 0, True), True)
    lasts = region_edge(t_toks, t_hard[p + n - 1].last, t_hard[p].first,
                  t_hard[p + n].first - 1 if p + n < len(t_hard) else len(t_toks) - 1,
                  edge_brackets(a_toks, a_hard[-1].last, a_hard[0].first, len(a_toks) - 1, False), False)
    for t_first, t_last in itertools.product(firsts, lasts):
        r = find_region(target, anchor, p, t_first, t_last, lo, hi)
        if r is None:
            continue
        edges = check_edges(target, anchor, p, t_first, t_last)
        if edges is None:
            continue
        span = target.around(r.t0, r.t1 + 1)
        want = target.tree(span)
        if want is None:
            continue
        for readings in outsides(target, anchor, p, t_first, t_last, r.cut_start, r.cut_end, edges):
            proven = _same_tree_readings(target, anchor, r, span, want, readings)
            if proven:
                return r, proven
    return None


def _same_tree_readings(target: View, anchor: Anchor, r: Region, span, want, readings) -> list[tuple[str, str]]:
    """The readings under which the anchor's text in the region parses to `want`; [] as soon as one
    parses to another tree (the code there is not the anchor's)."""
    proven: list[tuple[str, str]] = []
    for pre, post in readings:
        candidate = (pre + anchor.text[r.a_from : r.a_to] + post).split("\n")
        tree = snippet_tree(candidate, span, len(candidate) - len(target.lines))
        if tree is not None and tree != want:
            return []
        if tree is not None:
            proven.append((pre, post))
    return proven


def _meant_texts(anchor: Anchor, r: Region, h0: int, h1: int, outside: list[tuple[str, str]]) -> list[list[str]]:
    """The hunk's new side (its lines h0..h1, with the `+` lines around them) in place of the
    region, once per reading of the text outside it."""
    hunk, aw = anchor.hunk_lines, anchor.where
    new_side = [text for op, text in hunk[h0 : h1 + 1] if op != "-"]
    if r.glued_head:
        new_side[0] = new_side[0][aw.col(r.a_start) :]
    if r.glued_tail:
        new_side[-1] = new_side[-1][: aw.col(r.a_end) - (aw.col(r.a_start) if r.glued_head and len(new_side) == 1 else 0)]
    before = [text for op, text in hunk[:h0] if op == "+"]
    after = [text for op, text in hunk[h1 + 1 :] if op == "+"]
    return [(pre + "\n".join(before + new_side + after) + post).split("\n") for pre, post in outside]
