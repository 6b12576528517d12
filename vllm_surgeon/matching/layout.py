"""Anchors that survive reformatting: find a hunk's anchor by structure when its text is gone (issue 10).

vLLM moved its tree to `ruff format` at 0.11.1; a formatter changes line breaks inside brackets,
quotes, trailing commas, redundant parentheses, backslashes, the spaces in docstrings and after
`#`, never the code. When an anchor's text is not in the target, this module looks for the places
where the anchor's tokens occur in the target with all that left out (parentheses, commas and `;`
are not compared; strings compare by value, joined or piece by piece), and then proves each place
on syntax trees:

1. the anchor's own text put in place of the target's gives exactly the target's tree (the code
   there *is* the anchor's code). A parenthesis the formatter added around the anchor's edge is
   left out of the target's text for this; one it dropped there is put back in every place of the
   statement where it could have been, and all of them must give the target's tree. Neither
   beyond an anchor's open edge, where a token left out as layout is code (issue 14, `edges`);
2. the result written in the target's layout (context lines keep the target's text, removed lines
   go wherever the formatter put them, `+` lines go in between lines; a line holding both kept and
   changed code is written as the hunk has it) gives exactly the tree of the hunk applied to its
   own lines put there.

Equality, never similarity: a real change of the code cannot pass step 1, and step 2 proves the
result. Every place that passes step 1 counts: like a text match, the anchor must be found exactly
once. The engine calls this only after the text search found nothing (text first, structure second).

The stages, one module each, imported one way (each from those before it): `tokens` (scanning and
compared keys), `texts` (the target and the anchor's readings, syntax trees), `edges` (where the
region begins and ends, and which edge tokens are code: issue 14), `brackets` (the text outside the
region, with a formatter's parentheses left out or put back), `writing` (the hunk in the target's
layout), `proof` (both steps above); this module searches and is what the engine imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vllm_surgeon.matching.edges import edge_string
from vllm_surgeon.matching.proof import Place, prove
from vllm_surgeon.matching.texts import Anchor, View, anchor_readings, target_of
from vllm_surgeon.matching.tokens import scan
from vllm_surgeon.matching.writing import Match, changed_span

__all__ = ["ENABLED", "Match", "Place", "Search", "changed_span", "search"]


# Turned off by tools/bench_reformat.py to measure text-only matching in the same run.
ENABLED = True


@dataclass
class Search:
    """Every place the structural search proved the anchor's code is, in target order. Like a text
    match, it counts only if there is exactly one."""

    places: list[Place]


def search(lines: Sequence[str], hunk_lines: Sequence[tuple[str, str]], spans: Sequence[tuple[int, int]]) -> Search:
    """Every place in `lines`, inside one of `spans` ([lo, hi) line ranges), where the hunk's anchor
    is the same code in another layout and the hunk can be written in that layout."""
    result = Search([])
    if not ENABLED or not any(op != "+" and text.strip() for op, text in hunk_lines):
        return result
    # Formatters never touch a name: a span without every name of the anchor holds no match (this
    # keeps a refusal for a real change about as cheap as before).
    names = {t.text for t in scan("\n".join(text for op, text in hunk_lines if op != "+")) or () if t.kind == "name"}
    spans = [(lo, hi) for lo, hi in spans if _has_all(names, "\n".join(lines[lo:hi]))]
    if not spans:
        return result
    target = target_of("\n".join(lines))
    if not target.toks or not target.parses:
        return result
    seen: dict[int, int] = {}  # offset of a place's first token -> its index in result.places
    for anchor in anchor_readings(hunk_lines):
        view = target.view(anchor.joined)
        for lo, hi in spans:
            for p in _candidates(view, anchor, lo, hi):
                place = _prove_safely(view, anchor, p, lo, hi)
                if place is not None:
                    _keep_place(result.places, seen, place)
    result.places.sort(key=lambda place: place.at)
    return result


def _prove_safely(view: View, anchor: Anchor, p: int, lo: int, hi: int) -> Place | None:
    try:
        return prove(view, anchor, p, lo, hi)
    except (ValueError, IndexError, RecursionError, MemoryError):
        # A place this module cannot read is no match: the hunk is then refused, never
        # applied on a guess, and nothing here may take a vLLM process down.
        return None


def _keep_place(places: list[Place], seen: dict[int, int], place: Place) -> None:
    """One place per offset: the first found, unless a later reading of it can be written (has a match)."""
    if place.at not in seen:
        seen[place.at] = len(places)
        places.append(place)
    elif place.match is not None and places[seen[place.at]].match is None:
        places[seen[place.at]] = place


def _has_all(names: set[str], text: str) -> bool:
    return all(name in text for name in names)


def _candidates(target: View, anchor: Anchor, lo: int, hi: int) -> list[int]:
    """Indexes p of target hard tokens where the anchor's hard tokens occur, all inside [lo, hi)."""
    keys = [h.key for h in anchor.hard]
    n = len(keys)
    head = keys[0] == "phead"
    tail = keys[-1] == "ptail"
    inner_from = 1 if head else 0
    inner_to = n - 1 if tail else n
    if inner_to <= inner_from:
        return []
    out = []
    for q in target.by_key.get(keys[inner_from], ()):
        p = q - inner_from
        if p < 0 or p + n > len(target.keys):
            continue
        if target.keys[q : q + inner_to - inner_from] != keys[inner_from:inner_to]:
            continue
        if target.first_line[p] < lo or target.last_line[p + n - 1] >= hi:
            continue
        if head and edge_string(target, p, anchor.toks[anchor.hard[0].first].text, True) is None:
            continue
        if tail and edge_string(target, p + n - 1, anchor.toks[anchor.hard[-1].first].text, False) is None:
            continue
        out.append(p)
    return out
