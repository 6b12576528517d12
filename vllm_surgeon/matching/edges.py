"""Where the anchor's region begins and ends in the target (issue 10), and which tokens at those
edges are code (issue 14): the anchor is whole lines and shows nothing beyond them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vllm_surgeon.matching.texts import Anchor, View
from vllm_surgeon.matching.tokens import CLOSE, OPEN, SOFT, Tok, blank, depth_between, string_key, unmatched


def edge_string(target: View, p: int, fragment: str, head: bool) -> int | None:
    """A string the anchor's text starts (head) or ends (tail) inside: where, in the target's string
    there, the anchor's part of it starts (ends), or None when that part is not there. Lines compare
    stripped (a docstring re-indented, its trailing spaces gone), never the line with the quotes."""
    h = target.hard[p]
    if not h.key.startswith("s"):
        return None
    tok = target.toks[h.last if head else h.first]
    if tok.text.endswith(fragment) if head else tok.text.startswith(fragment):
        return tok.end - len(fragment) if head else tok.start + len(fragment)
    piece, part = tok.text.split("\n"), fragment.split("\n")
    if len(part) >= len(piece):
        return None
    if head:
        if part[-1].strip() != piece[-1].strip():  # the line that closes the string
            return None
        if [x.strip() for x in part[:-1]] != [x.strip() for x in piece[len(piece) - len(part) : -1]]:
            return None
        line = target.where.of(tok.end - 1) - (len(part) - 1)
        return target.where.starts[line]
    if part[0] != piece[0] or [x.strip() for x in part[1:]] != [x.strip() for x in piece[1 : len(part)]]:
        return None
    line = target.where.of(tok.start) + len(part) - 1
    return target.where.starts[line] + len(target.lines[line])


@dataclass
class Region:
    """Where the anchor's text and the target's text stand for each other (character offsets and lines)."""

    t_first: int  # first and last target tokens
    t_last: int
    t_start: int  # character span in the target
    t_end: int
    t0: int  # its first and last lines
    t1: int
    a_start: int  # character span in the anchor's text
    a_end: int
    k0: int  # its first and last anchor lines
    k1: int
    glued_head: bool  # the target's line holds code before (after) the region
    glued_tail: bool
    cut_start: int  # the target text outside: [0, cut_start) and [cut_end, end)
    cut_end: int
    a_from: int  # the anchor's text that goes between
    a_to: int


def find_region(target: View, anchor: Anchor, p: int, t_first: int, t_last: int, lo: int, hi: int) -> Region | None:
    a_toks, t_toks, n = anchor.toks, target.toks, len(anchor.hard)
    # Character span of the region in both texts (an edge string counts only the anchor's part).
    a_start, a_end = a_toks[0].start, a_toks[-1].end
    t_start: int | None = t_toks[t_first].start
    t_end: int | None = t_toks[t_last].end
    if a_toks[0].partial == "head":
        t_start = edge_string(target, p, a_toks[0].text, True)
    if a_toks[-1].partial == "tail":
        t_end = edge_string(target, p + n - 1, a_toks[-1].text, False)
    if t_start is None or t_end is None:
        return None  # (never: the search kept only places where the edge strings hold the anchor's part)
    tw, aw, lines = target.where, anchor.where, target.lines
    t0, t1 = tw.of(t_start), tw.of(t_end - 1)
    k0, k1 = aw.of(a_start), aw.of(a_end - 1)
    if t0 < lo or t1 >= hi:
        return None
    glued_head = not blank(lines[t0][: tw.col(t_start)])
    suffix = lines[t1][t_end - tw.starts[t1] :].strip()
    if suffix.startswith("#") and a_toks[-1].kind != "comment":
        return None  # a comment on the anchor's last line: formatters never add one (a change, as for text)
    glued_tail = bool(suffix)
    # The text outside the region: whole lines where the region starts (ends) a line, else the
    # target's code before (after) the anchor's first (last) token on that line.
    return Region(
        t_first, t_last, t_start, t_end, t0, t1, a_start, a_end, k0, k1, glued_head, glued_tail,
        t_start if glued_head else tw.starts[t0],
        t_end if glued_tail else tw.starts[t1] + len(lines[t1]),
        a_start if glued_head else aw.starts[k0],
        a_end if glued_tail else aw.starts[k1] + len(anchor.lines[k1]),
    )


def _walk(toks: Sequence[Tok], span_from: int, span_to: int, edge: int, forward: bool) -> list[tuple[int, int]]:
    """Bracket counts walking out of a span of tokens into the soft tokens at one of its edges.

    The span is walked from span_from to span_to (forward: increasing), counting the brackets it
    leaves open toward that edge; then each token up to `edge` is taken in turn. Entry k is
    (brackets closed beyond the span, brackets still open) after taking k edge tokens.
    """
    opens, closes = (OPEN, CLOSE) if forward else (CLOSE, OPEN)
    step = 1 if forward else -1
    beyond = stack = 0
    out = []
    i = span_from
    while True:
        if i == span_to + step:
            out.append((beyond, stack))
        if (i > edge) if forward else (i < edge):
            break
        t = toks[i]
        if t.kind == "op":
            if t.text in opens:
                stack += 1
            elif t.text in closes:
                if stack:
                    stack -= 1
                elif (i - span_to) * step > 0:
                    beyond += 1
        if (i - span_to) * step > 0:
            out.append((beyond, stack))
        i += step
    return out


def edge_brackets(toks: Sequence[Tok], near: int, far: int, edge: int, leading: bool) -> tuple[int, int, list[str]]:
    """For the anchor: (closed beyond, still open, edge token texts) with all its edge tokens on one side."""
    beyond, still = _walk(toks, far, near, edge, not leading)[-1]
    texts = [t.text for t in (toks[edge:near] if leading else toks[near + 1 : edge + 1])]
    return beyond, still, texts


def region_edge(toks: Sequence[Tok], near: int, far: int, limit: int, want: tuple[int, int, list[str]], leading: bool) -> list[int]:
    """The target's first (leading) or last token of the region, best first: as many soft tokens
    beyond the compared ones as leave the brackets as the anchor's edge leaves them (else the
    closest); then as many as the anchor has there, if they are the same tokens."""
    steps = _walk(toks, far, near, limit, not leading)

    def taken(k: int) -> list[str]:
        return [t.text for t in (toks[near - k : near] if leading else toks[near + 1 : near + 1 + k])]

    def cost(k: int) -> tuple:
        return abs(steps[k][0] - want[0]) + abs(steps[k][1] - want[1]), taken(k) != want[2], abs(k - len(want[2])), k

    # An opening bracket beyond the anchor's first (last) token belongs to the region only if the
    # anchor has one there too: else it is the target's own (a call's, or one a formatter added).
    openers = sum(1 for text in want[2] if text in OPEN)
    allowed = [k for k in range(len(steps)) if sum(1 for text in taken(k) if text in OPEN) <= openers]
    best = [min(allowed, key=cost)]
    same = len(want[2])
    if same < len(steps) and same != best[0] and taken(same) == want[2]:
        best.append(same)
    return [near - k if leading else near + k for k in best]


@dataclass(frozen=True)
class Edges:
    """Whether the region's first (last) token is at an open edge: code of the same logical line
    lies before (after) it, in the target or in what the anchor came from, which the anchor, being
    whole lines, cannot show."""

    head_open: bool
    tail_open: bool


def check_edges(target: View, anchor: Anchor, p: int, t_first: int, t_last: int) -> Edges | None:
    """The region's edges, or None when a token there the comparison leaves out is code the anchor
    does not show the other side of (issue 14: an anchor ending `total_computed_tokens,` inside a
    call matched `f(a, total_computed_tokens)`, its comma read as a trailing one).

    At an open edge the anchor's soft tokens beyond its outermost code token and the region's must
    be the same, but for a comma right before a closing bracket both show; a string run there must
    be the same pieces (the anchor cannot show whether its concatenation goes on); a `;` there is
    code at any edge; an anchor ending in a backslash continues its statement, one ending without
    one may not be continued by a backslash in the target.
    """
    a_toks, t_toks, a_hard, t_hard = anchor.toks, target.toks, anchor.hard, target.hard
    code = [j for j, h in enumerate(a_hard) if not h.key.startswith("#")]
    if not code:
        return Edges(False, False)
    j0, j1 = code[0], code[-1]
    head_open = _open_before(target, t_first)
    tail_open, tail_backslash = _open_after(target, t_last)
    a_head = _soft_texts(a_toks, 0, a_hard[j0].first)
    t_head = _soft_texts(t_toks, t_first, t_hard[p + j0].first)
    a_tail = _soft_texts(a_toks, a_hard[j1].last + 1, len(a_toks))
    t_tail = _soft_texts(t_toks, t_hard[p + j1].last + 1, t_last + 1)
    if a_head.count(";") != t_head.count(";") or a_tail.count(";") != t_tail.count(";"):
        return None
    if head_open and (_shown(a_head) != _shown(t_head) or not a_head and not _same_pieces(target, anchor, p, j0)):
        return None
    if tail_open and (_shown(a_tail) != _shown(t_tail) or not a_tail and not _same_pieces(target, anchor, p, j1)):
        return None
    a_backslash = "\\" in anchor.text[a_toks[-1].end :]
    if (a_backslash and not tail_open) or (tail_backslash and not a_backslash):
        return None
    # The anchor's own statement goes on beyond its edge (brackets it leaves open, a backslash, or
    # brackets its first line closes): a parenthesis put back or left out there would be beyond
    # what it shows, even where the target's statement ends (issue 14: `x = (` / `f(request)`
    # matched `x = f(request)` with the `)` put back after it).
    a_closers, a_openers = unmatched(a_toks, 0, len(a_toks))
    return Edges(head_open or bool(a_closers), tail_open or bool(a_openers) or a_backslash)


def _soft_texts(toks: Sequence[Tok], lo: int, hi: int) -> list[str]:
    return [t.text for t in toks[lo:hi] if t.kind == "op" and t.text in SOFT]


def _shown(texts: list[str]) -> list[str]:
    """Edge soft tokens as far as they are code: a comma right before a closing bracket, both on this
    side of the edge, is layout (a magic trailing comma); any other is code."""
    return [x for i, x in enumerate(texts) if not (x == "," and i + 1 < len(texts) and texts[i + 1] in CLOSE)]


def _same_pieces(target: View, anchor: Anchor, p: int, j: int) -> bool:
    """An edge string run compared piece by piece, each by value (not joined: the anchor does not
    show where its concatenation ends)."""
    a, t = anchor.hard[j], target.hard[p + j]
    if not a.key.startswith("s") or a.first == a.last and t.first == t.last:
        return True
    a_pieces = [string_key([anchor.toks[k].text]) for k in range(a.first, a.last + 1)]
    t_pieces = [string_key([target.toks[k].text]) for k in range(t.first, t.last + 1)]
    return a_pieces == t_pieces


def _open_before(target: View, first: int) -> bool:
    """Whether code of the same logical line comes before target token `first`."""
    toks, text = target.toks, target.text
    k = first - 1
    while k >= 0 and toks[k].kind == "comment":
        k -= 1
    if k < 0:
        return False
    gap = text[toks[k].end : toks[first].start]
    return depth_between(toks, k, True) > 0 or "\n" not in gap.replace("\\\n", "") or "\\\n" in gap


def _open_after(target: View, last: int) -> tuple[bool, bool]:
    """Whether code of the same logical line comes after target token `last`; and whether it does
    by a backslash continuation."""
    toks, text = target.toks, target.text
    k = last + 1
    while k < len(toks) and toks[k].kind == "comment":
        k += 1
    if k >= len(toks):
        return False, False
    gap = text[toks[last].end : toks[k].start]
    backslash = "\\\n" in gap and depth_between(toks, last, True) == 0
    return depth_between(toks, last, True) > 0 or "\n" not in gap.replace("\\\n", "") or backslash, backslash
