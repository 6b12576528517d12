"""Finding an anchor's exact occurrences in a span of source lines, and the closest near-miss."""

from __future__ import annotations

import difflib
import math
import re
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
    """The lines in the searched span most like the anchor, and how they differ from it."""

    start: int  # 0-based index of the first found line
    found: tuple[str, ...]
    agree: int  # anchor lines found unchanged
    summary: str  # what differs, e.g. "1 of 3 lines differs (anchor line 2 changed)"


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _words(text: str) -> frozenset[str]:
    """Names and numbers in a line, and the parts of each name (`running_requests`: running,
    requests): a renamed variable still shares most of what its lines say."""
    words = set(_WORD.findall(text))
    for word in list(words):
        if "_" in word or not word.islower():
            words.update(part.lower() for part in _PART.findall(word) if len(part) > 1)
    return frozenset(words)
_MAX_BAND = 10  # lines upstream may insert or remove inside an anchor and still be found as one block
_CANDIDATES = 6


def closest(lines: Sequence[str], anchor: Sequence[str], lo: int, hi: int, near: int | None = None) -> NearMiss | None:
    """The block of [lo, hi) a person would point at as "that anchor, changed"; None when nothing is alike.

    Roughly linear in the span and the anchor (issue 7 item 11: the window-by-window search took
    minutes for a 200-line anchor). Every anchor line votes for the offsets ("diagonals") at which
    it, or lines sharing its rarer words, occur: an exact line by how rare it is (a `)` that occurs
    everywhere carries nothing), a line sharing words by their rarity. Bands of nearby diagonals are
    summed (upstream inserted or removed lines shift the rest of the anchor), the best few bands are
    aligned line by line, and the best alignment wins; `near` (0-based, the hunk's line hint) breaks ties.
    """
    n = len(anchor)
    hi = min(hi, len(lines))
    if n == 0 or hi <= lo:
        return None
    span = _Span([lines[i].strip() for i in range(lo, hi)])
    stripped = [line.strip() for line in anchor]
    side = _Side(stripped, [_words(text) for text in stripped])
    votes = _votes(span, side)
    if not votes:
        return None
    band = min(_MAX_BAND, max(2, n // 4))
    best = None
    for d in _best_diagonals(votes, band):
        found = _aligned_on(side, span, d - (n - 1), band, lo, near)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    # Too little alike to point at: a third of the anchor's lines' worth (three lines for long anchors).
    if best is None or best[0][0] < max(0.5, min(3.0, 0.3 * n)):
        return None
    _, matched = best
    first, last = matched[0][1], matched[-1][1]
    start = lo + first
    near_lines = tuple(lines[start : lo + last + 1])
    agree = sum(1 for i, k in matched if anchor[i] == lines[lo + k])
    return NearMiss(start, near_lines, agree, _summary(anchor, lines, lo, matched))


class _Span:
    """The searched lines (stripped), their words, and where each line text and word occurs."""

    def __init__(self, text: list[str]) -> None:
        self.text = text
        self.words = [_words(line) for line in text]
        self.by_text: dict[str, list[int]] = {}
        self.postings: dict[str, list[int]] = {}
        for k, line in enumerate(text):
            if line:
                self.by_text.setdefault(line, []).append(k)
                for word in self.words[k]:
                    self.postings.setdefault(word, []).append(k)
        self.common = max(8, len(text) // 20)  # lines or words more frequent than this say nothing about where


def _votes(span: _Span, anchor: _Side) -> dict[int, dict[int, float]]:
    """votes[d][j]: how strongly anchor line j says the anchor sits on diagonal d (anchor line j at
    span line k = j + d - (n - 1)); each anchor line counts once per diagonal."""
    n = len(anchor.text)
    votes: dict[int, dict[int, float]] = {}
    for j, (text, words) in enumerate(zip(anchor.text, anchor.words, strict=True)):
        if not text:
            continue
        for k, vote in _line_votes(span, text, words).items():
            cell = votes.setdefault(k - j + n - 1, {})
            cell[j] = max(cell.get(j, 0.0), min(vote, 1.0))
    return votes


def _line_votes(span: _Span, text: str, words: frozenset[str]) -> dict[int, float]:
    """Span lines one anchor line points at: where it occurs (by its rarity), and where its words
    occur (each word by its share of the line's rarity)."""
    here: dict[int, float] = {}
    exact = span.by_text.get(text, ())
    if 0 < len(exact) <= span.common:
        for k in exact:
            here[k] = 1.0 / len(exact)
    size = len(span.text)
    rarity = {w: math.log((size + 1) / (len(span.postings.get(w, ())) + 1)) for w in words}
    total = sum(rarity.values()) or 1.0
    for word in words:
        found = span.postings.get(word, ())
        if 0 < len(found) <= span.common:
            share = rarity[word] / total
            for k in found:
                here[k] = here.get(k, 0.0) + share
    return here


def _best_diagonals(votes: dict[int, dict[int, float]], band: int) -> list[int]:
    """The few diagonals whose band (nearby diagonals: upstream inserted or removed lines inside the
    anchor shift the rest of it) gathers the most votes, each anchor line with its best vote there;
    no two within a band of each other."""
    scored = []
    for d in votes:
        best_of: dict[int, float] = {}
        for other in range(d - band, d + band + 1):
            for j, vote in votes.get(other, {}).items():
                if vote > best_of.get(j, 0.0):
                    best_of[j] = vote
        scored.append((sum(best_of.values()), d))
    scored.sort(key=lambda t: (-t[0], t[1]))
    picked: list[int] = []
    for _, d in scored:
        if all(abs(d - other) > band for other in picked):
            picked.append(d)
            if len(picked) == _CANDIDATES:
                break
    return picked


def _aligned_on(
    side: _Side, span: _Span, offset: int, band: int, lo: int, near: int | None
) -> tuple[tuple[float, int, int], list[tuple[int, int]]] | None:
    """The anchor aligned with the span around `offset` (span index of anchor line 0): its ranking
    key (likeness less inserted lines, then nearness to `near`, then earlier) and the pairs."""
    w0, w1 = max(0, offset - band), min(len(span.text), offset + len(side.text) + band)
    pairs = _align(side, _Side(span.text[w0:w1], span.words[w0:w1]))
    matched = [(i, w0 + k) for i, k in pairs if i is not None and k is not None]
    if not matched:
        return None
    quality = sum(_evidence(side.text[i], span.text[k], side.words[i], span.words[k]) for i, k in matched)
    first, last = matched[0][1], matched[-1][1]
    inserted = (last - first + 1) - len(matched)
    distance = abs(lo + first - near) if near is not None else 0
    return (round(quality - 0.25 * inserted, 6), -distance, -first), matched


class _Side:
    """Stripped lines and the set of words of each (computed once)."""

    def __init__(self, text: list[str], words: list[frozenset[str]]) -> None:
        self.text = text
        self.words = words


def _similarity(a: str, b: str, x: frozenset[str], y: frozenset[str]) -> float:
    """1 for the same text; else the share of words (names, numbers: x and y) the two lines have in common."""
    if a == b:
        return 1.0
    return len(x & y) / len(x | y) if x and y else 0.0


def _evidence(a: str, b: str, x: frozenset[str], y: frozenset[str]) -> float:
    """How much a pair says "this is the anchor's place": a line of names counts, a bare `)` hardly."""
    like = _similarity(a, b, x, y)
    if like < 0.5:
        return 0.0
    return like if x else 0.2 * like


def _align(a: _Side, b: _Side) -> list[tuple[int | None, int | None]]:
    """Anchor lines `a` against window lines `b` (both stripped), in order: (i, k) paired, (i, None)
    gone upstream, (None, k) inserted upstream. Equal lines anchor the alignment; the lines between
    them pair up by likeness."""
    matcher = difflib.SequenceMatcher(None, a.text, b.text, autojunk=False)
    blocks = [m for m in matcher.get_matching_blocks() if m.size]
    out: list[tuple[int | None, int | None]] = []
    i = k = 0
    for block_no, block in enumerate(blocks):
        leading = block_no == 0
        out += _gap(a, b, i, block.a, (block.b - (block.a - i) - _MAX_BAND) if leading else k, block.b, leading=leading)
        out += [(block.a + t, block.b + t) for t in range(block.size)]
        i, k = block.a + block.size, block.b + block.size
    if blocks:
        out += _gap(a, b, i, len(a.text), k, min(len(b.text), k + (len(a.text) - i) + _MAX_BAND), trailing=True)
    else:
        out += _gap(a, b, 0, len(a.text), 0, len(b.text), leading=True, trailing=True)
    return out


def _gap(
    a: _Side, b: _Side, i0: int, i1: int, k0: int, k1: int, leading: bool = False, trailing: bool = False
) -> list[tuple[int | None, int | None]]:
    """Pair a[i0:i1] with b[k0:k1] by likeness (a small alignment); window lines outside the pairs
    at the open ends of the anchor are not part of the match."""
    k0 = max(0, k0)
    rows, cols = i1 - i0, k1 - k0
    if rows == 0:
        return [] if leading or trailing else [(None, k) for k in range(k0, k1)]
    if cols == 0 or rows * cols > 1500:  # too large to align: keep the diagonal
        ks = [(k1 - rows + t) if leading and not trailing else (k0 + t) for t in range(rows)]
        return [(i0 + t, k if k0 <= k < k1 else None) for t, k in enumerate(ks)]
    move = _gap_moves(a, b, i0, k0, rows, cols, leading, trailing)
    pairs: list[tuple[int | None, int | None]] = []
    r, c = rows, cols
    while r or c:
        step = move[r][c]
        if step == "p":
            pairs.append((i0 + r - 1, k0 + c - 1))
            r, c = r - 1, c - 1
        elif step == "a":
            pairs.append((i0 + r - 1, None))
            r -= 1
        else:
            c -= 1
            if not ((trailing and r == rows) or (leading and r == 0)):
                pairs.append((None, k0 + c))
    return pairs[::-1]


def _gap_moves(a: _Side, b: _Side, i0: int, k0: int, rows: int, cols: int, leading: bool, trailing: bool) -> list[list[str]]:
    """The alignment table's best move into each cell: "p" pair, "a" skip an anchor line, "b" skip a
    window line. score[r][c]: best total likeness aligning a[i0:i0+r] with b[k0:k0+c]; free skips of
    window lines before the first pair (leading) and after the last (trailing)."""
    skip = -0.25
    score = [[0.0] * (cols + 1) for _ in range(rows + 1)]
    move = [[""] * (cols + 1) for _ in range(rows + 1)]
    for r in range(1, rows + 1):
        score[r][0], move[r][0] = score[r - 1][0] + skip, "a"
    for c in range(1, cols + 1):
        score[0][c], move[0][c] = (0.0 if leading else score[0][c - 1] + skip), "b"
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            like = _similarity(a.text[i0 + r - 1], b.text[k0 + c - 1], a.words[i0 + r - 1], b.words[k0 + c - 1])
            options = [(score[r - 1][c - 1] + (like if like >= 0.15 else -0.5), "p"), (score[r - 1][c] + skip, "a")]
            free = trailing and r == rows
            options.append((score[r][c - 1] + (0.0 if free else skip), "b"))
            score[r][c], move[r][c] = max(options)
    return move


def _ranges(numbers: list[int]) -> str:
    """[2, 3, 4, 7] -> "lines 2-4, 7"; [5] -> "line 5"."""
    parts, run = [], [numbers[0]]
    for x in numbers[1:]:
        if x == run[-1] + 1:
            run.append(x)
        else:
            parts.append(run)
            run = [x]
    parts.append(run)
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in parts)
    return f"lines {text}" if len(numbers) > 1 else f"line {text}"


def _summary(anchor: Sequence[str], lines: Sequence[str], lo: int, matched: list[tuple[int, int]]) -> str:
    """What differs between the anchor and the found block, in the anchor's own line numbers."""
    n = len(anchor)
    paired = {i: lo + k for i, k in matched}
    changed = [i + 1 for i in sorted(paired) if anchor[i] != lines[paired[i]] and anchor[i].strip() != lines[paired[i]].strip()]
    indented = [i + 1 for i in sorted(paired) if anchor[i] != lines[paired[i]] and anchor[i].strip() == lines[paired[i]].strip()]
    removed = [i + 1 for i in range(n) if i not in paired]
    inserted_after: dict[int, int] = {}
    for (i, k), (_, k2) in zip(matched, matched[1:], strict=False):
        if k2 > k + 1:
            inserted_after[i + 1] = k2 - k - 1
    inserted = sum(inserted_after.values())
    several = len(inserted_after) > 1
    where = ", ".join(f"{f'{c} ' if several else ''}after its line {i}" for i, c in inserted_after.items())
    insertion = f"upstream inserted {inserted} line{'s' if inserted != 1 else ''} inside the anchor ({where})" if inserted else ""
    differ = len(changed) + len(indented) + len(removed)
    if not differ:
        return f"all {n} lines are there, but {insertion}" if inserted else f"all {n} lines agree"
    what = []
    if changed:
        what.append(f"anchor {_ranges(changed)} changed")
    if indented:
        what.append(f"{'anchor ' if not changed else ''}{_ranges(indented)} re-indented")
    if removed:
        what.append(f"{'anchor ' if not (changed or indented) else ''}{_ranges(removed)} removed upstream")
    text = f"{differ} of {n} line{'s' if n != 1 else ''} differ{'s' if differ == 1 else ''} ({', '.join(what)})"
    return text + (f"; {insertion}" if insertion else "")
