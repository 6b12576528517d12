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


def closest(lines: Sequence[str], anchor: Sequence[str], lo: int, hi: int, near: int | None = None) -> NearMiss | None:  # noqa: C901 - written before the limit; split it when it next changes (issue 7 item 14)
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
    span = [lines[i].strip() for i in range(lo, hi)]
    size = len(span)
    span_words = [_words(text) for text in span]
    by_text: dict[str, list[int]] = {}
    postings: dict[str, list[int]] = {}
    for k, text in enumerate(span):
        if text:
            by_text.setdefault(text, []).append(k)
            for word in span_words[k]:
                postings.setdefault(word, []).append(k)
    common = max(8, size // 20)  # lines or words more frequent than this say nothing about where
    # votes[d][j]: how strongly anchor line j says the anchor sits on diagonal d (anchor line j at
    # span line k = j + d - (n - 1)); each anchor line counts once per diagonal.
    votes: dict[int, dict[int, float]] = {}
    for j, line in enumerate(anchor):
        text = line.strip()
        if not text:
            continue
        here: dict[int, float] = {}
        exact = by_text.get(text, ())
        if 0 < len(exact) <= common:
            for k in exact:
                here[k] = 1.0 / len(exact)
        words = _words(text)
        rarity = {w: math.log((size + 1) / (len(postings.get(w, ())) + 1)) for w in words}
        total = sum(rarity.values()) or 1.0
        for word in words:
            found = postings.get(word, ())
            if 0 < len(found) <= common:
                share = rarity[word] / total
                for k in found:
                    here[k] = here.get(k, 0.0) + share
        for k, vote in here.items():
            cell = votes.setdefault(k - j + n - 1, {})
            cell[j] = max(cell.get(j, 0.0), min(vote, 1.0))
    if not votes:
        return None
    # A band of nearby diagonals (upstream inserted or removed lines inside the anchor shift the
    # rest of it): each anchor line counts with its best vote in the band.
    band = min(_MAX_BAND, max(2, n // 4))
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
    stripped = [line.strip() for line in anchor]
    anchor_words = [_words(text) for text in stripped]
    best = None
    for d in picked:
        offset = d - (n - 1)  # span index of anchor line 0 on this diagonal
        w0, w1 = max(0, offset - band), min(size, offset + n + band)
        pairs = _align(_Side(stripped, anchor_words), _Side(span[w0:w1], span_words[w0:w1]))
        matched = [(i, w0 + k) for i, k in pairs if i is not None and k is not None]
        if not matched:
            continue
        quality = sum(_evidence(stripped[i], span[k], anchor_words[i], span_words[k]) for i, k in matched)
        first, last = matched[0][1], matched[-1][1]
        inserted = (last - first + 1) - len(matched)
        distance = abs(lo + first - near) if near is not None else 0
        key = (round(quality - 0.25 * inserted, 6), -distance, -first)
        if best is None or key > best[0]:
            best = (key, matched, first, last)
    # Too little alike to point at: a third of the anchor's lines' worth (three lines for long anchors).
    if best is None or best[0][0] < max(0.5, min(3.0, 0.3 * n)):
        return None
    _, matched, first, last = best
    start = lo + first
    near_lines = tuple(lines[start : lo + last + 1])
    agree = sum(1 for i, k in matched if anchor[i] == lines[lo + k])
    return NearMiss(start, near_lines, agree, _summary(anchor, lines, lo, matched))


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


def _gap(  # noqa: C901 - written before the limit; split it when it next changes (issue 7 item 14)
    a: _Side, b: _Side, i0: int, i1: int, k0: int, k1: int, leading: bool = False, trailing: bool = False
) -> list[tuple[int | None, int | None]]:
    """Pair a[i0:i1] with b[k0:k1] by likeness (a small alignment); window lines outside the pairs
    at the open ends of the anchor are not part of the match."""
    k0 = max(0, k0)
    rows, cols = i1 - i0, k1 - k0
    if rows == 0:
        return [] if leading or trailing else [(None, k) for k in range(k0, k1)]
    if cols == 0 or rows * cols > 1500:
        pairs: list[tuple[int | None, int | None]] = []
        for t in range(rows):  # too large to align: keep the diagonal
            k = (k1 - rows + t) if leading and not trailing else (k0 + t)
            pairs.append((i0 + t, k if k0 <= k < k1 else None))
        return pairs
    # score[r][c]: best total likeness aligning a[i0:i0+r] with b[k0:k0+c]; free skips of window lines
    # before the first pair (leading) and after the last (trailing).
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
    pairs = []
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


def side_by_side_diff(expected: Sequence[str], found: Sequence[str], expected_label: str, found_label: str) -> list[str]:
    """A unified diff of the whole expected anchor against the found lines ('-' expected, '+' found)."""
    return list(
        difflib.unified_diff(
            list(expected), list(found), expected_label, found_label, lineterm="", n=max(len(expected), len(found))
        )
    )
