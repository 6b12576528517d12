"""The target's text outside the anchor's region, read with the parentheses a formatter added
around the region left out, or with one it dropped put back everywhere it could have been (issue
10); never beyond an open edge of the anchor (issue 14)."""

from __future__ import annotations

import bisect
import itertools
import keyword

from vllm_surgeon.matching.edges import Edges
from vllm_surgeon.matching.texts import Anchor, View
from vllm_surgeon.matching.tokens import OPEN, Tok, depth_between, unmatched


def outsides(target: View, anchor: Anchor, p: int, t_first: int, t_last: int, cut_start: int, cut_end: int,
              edges: Edges):
    """The target's text before and after the region, for the anchor's text to go between: each
    yield is a list of (before, after) readings, all of which must prove the same tree.

    A formatter adds and drops parentheses. One that opens before the anchor's first token and
    closes inside it (or opens inside and closes after) in the target only, the anchor from the old
    layout has not: it is left out of the target's outside text (with backslashes where its lines
    then need joining), and if the tree is still the same it was redundant. One the anchor has
    and the target dropped: the anchor does not show where its other half was (`c * (a +` / `b)`
    and `c * a + b` look alike there), so it is put back in every place of the target's statement
    where it could have been: the readings must all give the target's tree, or none is taken.
    """
    toks, text = target.toks, target.text
    a_close, a_open = unmatched(anchor.toks, 0, len(anchor.toks))
    t_close, t_open = unmatched(toks, t_first, t_last + 1)
    a_close_text = [anchor.toks[i].text for i in a_close]
    a_open_text = [anchor.toks[i].text for i in a_open]
    t_close_text = [toks[i].text for i in t_close]
    t_open_text = [toks[i].text for i in t_open]
    # Which anchor bracket is which target bracket: the same compared token right before both.
    firsts = [h.first for h in target.hard]
    a_firsts = [h.first for h in anchor.hard]

    def same(a: int, t: int) -> bool:
        return bisect.bisect_left(a_firsts, a) == bisect.bisect_left(firsts, t) - p

    # A bracket put back or left out beyond an open edge: its other half is where the anchor cannot
    # show it, so it is code the anchor does not have (issue 14).
    if len(a_close) == len(t_close) + 1 and a_open_text == t_open_text:
        if edges.head_open:
            return
        readings = _put_back(target, t_close, a_close, anchor, same, t_first, cut_start, True)
        if readings:
            yield [(pre, text[cut_end:]) for pre in readings]
        return
    if len(a_open) == len(t_open) + 1 and a_close_text == t_close_text:
        if edges.tail_open:
            return
        readings = _put_back(target, t_open, a_open, anchor, same, t_last, cut_end, False)
        if readings:
            yield [(text[:cut_start], post) for post in readings]
        return
    if len(t_close) >= len(a_close) and len(t_open) >= len(a_open):
        yield from _without_added(target, (t_close, a_close, a_close_text), (t_open, a_open, a_open_text), same, cut_start, cut_end,
                                  edges)


_Brackets = tuple[list[int], list[int], list[str]]  # the region's unmatched brackets, the anchor's, the anchor's texts


def _without_added(target: View, closing: _Brackets, opening: _Brackets, same, cut_start: int, cut_end: int,
                   edges: Edges):
    """Readings of the outside text without the parentheses the formatter added around the region
    (at most 8 ways to tell which they are). closing/opening: (region's unmatched brackets, the
    anchor's, the anchor's texts). None left out beyond an open edge (see check_edges)."""
    tried = 0
    for drop_open in _extra_halves(target, *closing, same, "("):
        if drop_open and edges.head_open:
            continue
        for drop_close in _extra_halves(target, *opening, same, ")"):
            if drop_close and edges.tail_open:
                continue
            tried += 1
            if tried > 8:
                return
            pre = _without(target, sorted(drop_open), 0, cut_start, before=True)
            post = _without(target, sorted(drop_close), cut_end, len(target.text), before=False)
            if pre is not None and post is not None:
                yield [(pre, post)]


def _extra_halves(target: View, t_brackets: list[int], a_brackets: list[int], a_text: list[str], same, half: str):
    """Each way the region's unmatched brackets include the anchor's (same text, same place) with
    the rest being parentheses the formatter added: yields the outside halves (`half`) of those."""
    toks = target.toks
    texts = [toks[t].text for t in t_brackets]
    for keep in itertools.combinations(range(len(t_brackets)), len(a_brackets)):
        if [texts[i] for i in keep] != a_text:
            continue
        if not all(same(a, t_brackets[i]) for a, i in zip(a_brackets, keep, strict=True)):
            continue
        drop = [target.partner[t_brackets[i]] for i in range(len(t_brackets)) if i not in keep]
        if not any(j < 0 or toks[j].text != half for j in drop):
            yield drop


_ENDS_EXPRESSION = frozenset((")", "]", "}"))
_MAX_READINGS = 24


def _ends_expression(t: Tok) -> bool:
    if t.kind in ("number", "string"):
        return True
    if t.kind == "name":
        return not keyword.iskeyword(t.text) or t.text in ("True", "False", "None")
    return t.kind == "op" and t.text in _ENDS_EXPRESSION


def _put_back(target: View, t_brackets: list[int], a_brackets: list[int], anchor: Anchor, same, edge: int,
              cut: int, before: bool) -> list[str]:
    """The target's text before (`before`) or after the region, once for every place where the one
    parenthesis the anchor has beyond the target's (the other half of a pair the formatter dropped)
    could go: `(` where an expression can start (not after a name: that is a call), `)` after one;
    on the level of the anchor's bracket, within its statement. Empty when there is no such place,
    or too many to try. a_brackets/t_brackets: the anchor's and the region's unmatched closing
    brackets (innermost first), or opening ones (outermost first); `same(a, t)`: whether anchor
    token a and target token t come right after the same compared token."""
    toks, text = target.toks, target.text
    places = _put_back_places(target, t_brackets, a_brackets, anchor, same, edge, before)
    if not places or len(places) > _MAX_READINGS:
        return []
    out = []
    for k in sorted(places):
        if before:
            at = toks[k - 1].end if k else 0
            if at <= cut:
                out.append(text[:at] + "(" + text[at:cut])
        else:
            at = toks[k + 1].start if k + 1 < len(toks) else len(text)
            if at >= cut:
                out.append(text[cut:at] + ")" + text[at:])
    return out


def _put_back_places(target: View, t_brackets: list[int], a_brackets: list[int], anchor: Anchor, same, edge: int,
                     before: bool) -> set[int]:
    """Target token indexes next to which the dropped parenthesis could have been (see _put_back)."""
    toks = target.toks
    wanted = ")" if before else "("
    a_text = [anchor.toks[i].text for i in a_brackets]
    t_text = [toks[i].text for i in t_brackets]
    places: set[int] = set()
    for extra in range(len(a_text)):
        if a_text[extra] != wanted or a_text[:extra] + a_text[extra + 1 :] != t_text:
            continue
        kept = a_brackets[:extra] + a_brackets[extra + 1 :]
        if not all(same(a, t) for a, t in zip(kept, t_brackets, strict=False)):
            continue
        # The anchor must show some of what the pair held: a lone `if (` (or `)`) would fit any code.
        at = a_brackets[extra]
        if not any((h.first < at) if before else (h.first > at) for h in anchor.hard):
            continue
        # It sits around the target brackets standing for the anchor's inner ones, and inside the
        # one standing for its next outer one.
        if before:
            inner = target.partner[t_brackets[extra - 1]] if extra else edge
            outer = target.partner[t_brackets[extra]] if extra < len(t_brackets) else -1
        else:
            inner = target.partner[t_brackets[extra]] if extra < len(t_brackets) else edge
            outer = target.partner[t_brackets[extra - 1]] if extra else len(toks)
        places.update(_levels(target, inner, outer, before))
    return places


def _levels(target: View, inner: int, outer: int, before: bool) -> list[int]:
    """From token `inner` away from the region (down to `outer`, exclusive), the tokens k on its
    bracket level and statement where the parenthesis may go: `(` in the gap before k when the token
    before k cannot end an expression; `)` in the gap after k when k ends one."""
    toks, text = target.toks, target.text
    level = depth_between(toks, inner, not before)
    out: list[int] = []
    step = -1 if before else 1
    k = inner
    while 0 <= k < len(toks) and k != outer:
        depth = depth_between(toks, k, not before)
        if depth < level:
            break  # past the bracket around this level
        if k != inner and level == 0:
            gap = text[toks[k].end : toks[k + 1].start] if before else text[toks[k - 1].end : toks[k].start]
            if "\n" in gap.replace("\\\n", ""):
                break  # past the statement
        if depth == level and toks[k].kind != "comment":
            fits = (k == 0 or not _ends_expression(toks[k - 1])) if before else _ends_expression(toks[k])
            if fits:
                out.append(k)
        k += step
    return out


def _without(target: View, drop: list[int], lo: int, hi: int, before: bool) -> str | None:
    """target.text[lo:hi] with the bracket tokens `drop` blanked out, and a backslash on every line
    break that is then outside all brackets between the first dropped bracket and the region
    (`before`: they open before the region; else they close after it)."""
    text = target.text
    if not drop:
        return text[lo:hi]
    toks = target.toks
    chars = list(text[lo:hi])
    for j in drop:
        chars[toks[j].start - lo] = " "
    if before:
        first = drop[0]
        last = bisect.bisect_left(target.starts, hi) - 1  # the last token before the region
        stretch = range(first, last + 1)
    else:
        first = bisect.bisect_left(target.starts, lo)
        stretch = range(first - 1, drop[-1])
    for i in stretch:
        t = toks[i]
        depth = t.depth + (1 if t.kind == "op" and t.text in OPEN else 0)
        depth -= sum(1 for j in drop if (j <= i if before else j > i))
        if t.kind == "comment" and lo <= t.start < hi:  # a backslash cannot follow a comment
            for c in range(t.start, t.end):
                chars[c - lo] = " "
        if depth > 0:
            continue
        gap_from = t.end
        gap_to = toks[i + 1].start if i + 1 < len(toks) else len(text)
        for c in range(max(gap_from, lo), min(gap_to, hi)):
            if text[c] == "\n":
                chars[c - lo] = " \\\n"
    return "".join(chars)
