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
   statement where it could have been, and all of them must give the target's tree;
2. the result written in the target's layout (context lines keep the target's text, removed lines
   go wherever the formatter put them, `+` lines go in between lines; a line holding both kept and
   changed code is written as the hunk has it) gives exactly the tree of the hunk applied to its
   own lines put there.

Equality, never similarity: a real change of the code cannot pass step 1, and step 2 proves the
result. Every place that passes step 1 counts: like a text match, the anchor must be found exactly
once. The engine calls this only after the text search found nothing (text first, structure second).
"""

from __future__ import annotations

import ast
import bisect
import functools
import itertools
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vllm_surgeon.core.scopes import blocks

# Turned off by tools/bench_reformat.py to measure text-only matching in the same run.
ENABLED = True

# Tokens a formatter adds or drops (redundant parentheses, magic trailing commas, `a; b` split in
# two lines): left out of the comparison, which the syntax-tree proof then makes exact.
_SOFT = frozenset(("(", ")", ",", ";"))
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")

_PREFIX = r"(?i:rb|br|fr|rf|tr|rt|r|b|u|f|t)?"
_STRING_START = re.compile(_PREFIX + r"('''|\"\"\"|'|\")")
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"(?:\d|\.\d)(?:[\w.]|(?<=[eE])[+-])*")
_OP = re.compile(r"\*\*=|//=|>>=|<<=|\.\.\.|->|:=|\*\*|//|<<|>>|<=|>=|==|!=|[-+*/%&|^@]=|[-()\[\]{},:;.+*/%&|^~<>=@!]")
_BODY = {
    '"""': re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""', re.DOTALL),
    "'''": re.compile(r"(?:[^'\\]|\\.|'(?!''))*'''", re.DOTALL),
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"', re.DOTALL),
    "'": re.compile(r"(?:[^'\\\n]|\\.)*'", re.DOTALL),
}


@dataclass(slots=True)
class _Tok:
    kind: str  # name, number, string, op, comment, error
    text: str
    start: int  # character offsets in the scanned text
    end: int
    partial: str = ""  # strings cut by a fragment's edge: "head" (text begins inside it) or "tail"
    depth: int = 0  # brackets open around it, a bracket outside its own pair (whole modules only)


# (A one-quote string never starts where three quotes do: that is a long string the text ends inside.)
_STRINGS = "|".join(quote + ("" if len(quote) == 3 else f"(?!{quote * 2})") + body.pattern for quote, body in _BODY.items())
# One pattern for every token a whole line of code holds (complete strings included), tried once per
# token; what it cannot take (a string the text ends inside, a stray character) goes the slow way.
_TOKEN = re.compile(
    r"(?P<space>(?:[ \t\f\r]+|\\\r?(?:\n|$)|\n)+)"
    r"|(?P<comment>#[^\r\n]*)"
    r"|(?P<string>" + _PREFIX + "(?:" + _STRINGS + "))"
    r"|(?P<number>" + _NUMBER.pattern + ")"
    r"|(?P<name>" + _NAME.pattern + ")"
    r"|(?P<op>" + _OP.pattern + ")",
    re.DOTALL,
)


def _scan(text: str, inside: str | None = None) -> list[_Tok] | None:
    """Python tokens of `text`, which may be a fragment: unbalanced brackets are fine, and `inside`
    says it begins inside a triple-quoted string. None when `inside` does not close in `text`."""
    toks: list[_Tok] = []
    pos, n, depth = 0, len(text), 0
    if inside is not None:
        m = _BODY[inside].match(text)
        if m is None:
            return None
        toks.append(_Tok("string", text[: m.end()], 0, m.end(), "head"))
        pos = m.end()
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            pos = _scan_unreadable(text, pos, depth, toks)
            continue
        kind, end = m.lastgroup or "", m.end()  # every alternative of _TOKEN is a named group
        if kind == "op":
            value = m.group()
            depth -= value in _CLOSE
            toks.append(_Tok("op", value, pos, end, "", depth))
            depth += value in _OPEN
        elif kind != "space":
            toks.append(_Tok(kind, m.group(), pos, end, "", depth))
        pos = end
    return toks


def _scan_unreadable(text: str, pos: int, depth: int, toks: list[_Tok]) -> int:
    """What no token pattern reads at `pos`: a triple-quoted string the fragment ends inside, an
    unterminated one-line string, or one stray character; appended to `toks`. Where to go on."""
    n = len(text)
    m = _STRING_START.match(text, pos)
    if m and len(m.group(1)) == 3:  # the fragment ends inside this string
        toks.append(_Tok("string", text[pos:], pos, n, "tail", depth))
        return n
    if m:  # an unterminated one-line string
        eol = text.find("\n", pos)
        eol = n if eol < 0 else eol
        toks.append(_Tok("error", text[pos:eol], pos, eol, "", depth))
        return eol
    toks.append(_Tok("error", text[pos], pos, pos + 1, "", depth))
    return pos + 1


_PLAIN = re.compile(r"(?i:r|u)?('''|\"\"\"|'|\")")


def _string_key(pieces: Sequence[str]) -> str:
    """Adjacent string literals compare by what they evaluate to, not by quotes or where they split."""
    values = []
    for piece in pieces:  # the common case, without a parser: no escapes, bytes or f-strings
        m = _PLAIN.match(piece)
        if m is None or "\\" in piece:
            break
        values.append(piece[m.end() : len(piece) - len(m.group(1))])
    else:
        value = "".join(values)
        return "s" + repr(_doc(value) if "\n" in value else value)
    source = " ".join(pieces)
    try:
        node = ast.parse("(" + source + "\n)", mode="eval").body
    except SyntaxError:
        return "s?" + source
    if isinstance(node, ast.Constant):
        constant = node.value
        # A multi-line string may be a docstring: compared as _doc has it (the tree decides).
        return "s" + repr(_doc(constant) if isinstance(constant, str) and "\n" in constant else constant)
    return "s" + ast.dump(node)


def _number_key(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return "d?" + text.lower()
    return "d" + type(value).__name__ + repr(value)


@dataclass(slots=True)
class _Hard:
    """A token the comparison keeps (a run of adjacent strings is one), over full tokens first..last."""

    key: str
    first: int
    last: int


def _hard(toks: Sequence[_Tok], joined: bool = True) -> list[_Hard]:
    """The compared tokens. `joined`: adjacent strings are one (a formatter may join them); else
    each string piece is its own (an anchor may end or start in the middle of a long concatenation)."""
    out: list[_Hard] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "string" and not t.partial:
            j = i
            while joined and j + 1 < len(toks) and toks[j + 1].kind == "string" and not toks[j + 1].partial:
                j += 1
            out.append(_Hard(_string_key([toks[k].text for k in range(i, j + 1)]), i, j))
            i = j + 1
            continue
        if t.kind == "op" and t.text in _SOFT:
            i += 1
            continue
        if t.kind == "string":
            key = "p" + t.partial  # compared by text, at the edges only (see _edge_string)
        elif t.kind == "comment":
            key = "#" + t.text[1:].strip()  # black and ruff write `#x` as `# x`
        elif t.kind == "number":
            key = _number_key(t.text)
        else:
            key = t.kind[0] + t.text
        out.append(_Hard(key, i, i))
        i += 1
    return out


class _Lines:
    """Line numbers of character offsets in a text."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def col(self, offset: int) -> int:
        return offset - self.starts[self.of(offset)]


def _doc(value: str) -> str:
    """A docstring as black and ruff compare it: each line stripped (both re-indent docstrings and
    strip their trailing spaces, which vLLM 0.11.0 has)."""
    return "\n".join(line.strip() for line in value.strip().split("\n"))


def _tree(text: str) -> str | None:
    """The syntax tree of a module as comparable text (no positions; `u''` and `''` alike; docstrings
    as _doc has them), or None when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.kind = None
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            # A string statement: a docstring (or a no-op), wherever a snippet puts it.
            node.value.value = _doc(node.value.value)
    return ast.dump(tree)


class _Target:
    """A module's text, scanned once: tokens, comparison keys, lines, syntax tree."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.toks = _scan(text) or []
        self.where = _Lines(text)
        self.starts = [t.start for t in self.toks]
        self.partner = _partners(self.toks)
        self._views: dict[bool, _View] = {}
        try:
            self.module: ast.Module | None = ast.parse(text)
        except (SyntaxError, ValueError):
            self.module = None
        self.parses = self.module is not None
        self._trees: dict[tuple[int, int], str | None] = {}

    def around(self, start: int, end: int) -> tuple[int, int]:
        """The lines whose tree the proofs compare for a change of lines [start, end): the statements
        of the innermost block that hold those lines (elsewhere the texts are the same on both sides,
        and statements of one block parse the same on their own)."""
        assert self.module is not None  # asked only of a target that parses
        block: list[ast.stmt] = self.module.body
        outer: list[ast.stmt] | None = None  # the run of the block around `block`
        while True:
            run = [s for s in block if _first(s) < end and start < _end(s)]
            if len(run) == 1:
                inner = next((b for b in blocks(run[0]) if _first(b[0]) <= start and end <= _end(b[-1])), None)
                if inner is not None:
                    block, outer = inner, run
                    continue
            if run and _first(run[0]) < len(self.lines) and self.lines[_first(run[0])].lstrip().startswith("elif"):
                assert outer is not None  # an `elif` is inside its `if`, never a module's own statement
                run = outer  # an `elif` is no statement of its own: the whole `if` is
            if not run:
                return start, end
            return min(start, _first(run[0])), max(end, _end(run[-1]))

    def view(self, joined: bool) -> _View:
        if joined not in self._views:
            self._views[joined] = _View(self, joined)
        return self._views[joined]

    def tree(self, span: tuple[int, int]) -> str | None:
        if span not in self._trees:
            self._trees[span] = _snippet_tree(self.lines, span, 0)
        return self._trees[span]


def _first(node: ast.stmt) -> int:
    """A statement's first line, 0-based, decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())]) - 1


def _end(node: ast.stmt) -> int:
    """A statement's last line, 1-based (ast.parse sets end_lineno on every statement)."""
    assert node.end_lineno is not None
    return node.end_lineno


def _snippet_tree(lines: Sequence[str], span: tuple[int, int], grown: int) -> str | None:
    """The tree of lines span[0] .. span[1] + grown (a statement, parsed on its own: inside an
    `if 1:` when it is indented), as _tree compares it."""
    part = lines[span[0] : span[1] + grown]
    first = next((line for line in part if line.strip() and not line.lstrip().startswith("#")), "")
    text = "\n".join(part)
    return _tree("if 1:\n" + text if first[:1] in (" ", "\t") else text)


class _View:
    """A target's compared tokens, with adjacent strings joined or not (see _hard); the rest is the target's."""

    def __init__(self, target: _Target, joined: bool) -> None:
        self.target = target
        self.hard = _hard(target.toks, joined)
        self.keys = [h.key for h in self.hard]
        self.first_line = [target.where.of(target.toks[h.first].start) for h in self.hard]
        self.last_line = [target.where.of(target.toks[h.last].end - 1) for h in self.hard]
        self.by_key: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            self.by_key.setdefault(key, []).append(i)

    def __getattr__(self, name: str):
        return getattr(self.target, name)


@functools.lru_cache(maxsize=8)
def _target(text: str) -> _Target:
    return _Target(text)


@dataclass(frozen=True)
class Match:
    """The anchor found by structure: replace lines [start, end) of the target by `new`'s ops."""

    start: int
    end: int
    new: tuple[tuple[str, str], ...]  # (op, text) over the target's lines, as the engine's Placement


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


@dataclass
class Search:
    """Every place the structural search proved the anchor's code is, in target order. Like a text
    match, it counts only if there is exactly one."""

    places: list[Place]


class _Anchor:
    """A hunk's anchor (context and removed lines) read as one reading of its tokens."""

    def __init__(self, hunk_lines: Sequence[tuple[str, str]], toks: list[_Tok], text: str, joined: bool = True) -> None:
        self.hunk_lines = hunk_lines
        self.toks = toks
        self.joined = joined
        self.hard = _hard(toks, joined)
        self.where = _Lines(text)
        # anchor line -> index in hunk_lines
        self.hunk_index = [i for i, (op, _) in enumerate(hunk_lines) if op != "+"]
        self.lines = [hunk_lines[i][1] for i in self.hunk_index]
        self.text = text


def _readings(hunk_lines: Sequence[tuple[str, str]]) -> list[_Anchor]:
    """The anchor's token readings: as code, and (if it has triple quotes) as starting inside a string."""
    text = "\n".join(text for op, text in hunk_lines if op != "+")
    out = []
    for inside in (None, '"""', "'''"):
        if inside is not None and inside not in text:
            continue
        toks = _scan(text, inside)
        if toks and any(t.kind != "op" or t.text not in _SOFT for t in toks):
            out.append(_Anchor(hunk_lines, toks, text))
            # An anchor that starts or ends with a string may cut a concatenation the target has
            # in more pieces: read its strings piece by piece too.
            edges = (out[-1].hard[0], out[-1].hard[-1])
            if any(toks[h.first].kind == "string" and not toks[h.first].partial for h in edges):
                out.append(_Anchor(hunk_lines, toks, text, joined=False))
    return out


def search(lines: Sequence[str], hunk_lines: Sequence[tuple[str, str]], spans: Sequence[tuple[int, int]]) -> Search:
    """Every place in `lines`, inside one of `spans` ([lo, hi) line ranges), where the hunk's anchor
    is the same code in another layout and the hunk can be written in that layout."""
    result = Search([])
    if not ENABLED or not any(op != "+" and text.strip() for op, text in hunk_lines):
        return result
    # Formatters never touch a name: a span without every name of the anchor holds no match (this
    # keeps a refusal for a real change about as cheap as before).
    names = {t.text for t in _scan("\n".join(text for op, text in hunk_lines if op != "+")) or () if t.kind == "name"}
    spans = [(lo, hi) for lo, hi in spans if _has_all(names, "\n".join(lines[lo:hi]))]
    if not spans:
        return result
    target = _target("\n".join(lines))
    if not target.toks or not target.parses:
        return result
    seen: dict[int, int] = {}  # offset of a place's first token -> its index in result.places
    for anchor in _readings(hunk_lines):
        view = target.view(anchor.joined)
        for lo, hi in spans:
            for p in _candidates(view, anchor, lo, hi):
                place = _prove_safely(view, anchor, p, lo, hi)
                if place is not None:
                    _keep_place(result.places, seen, place)
    result.places.sort(key=lambda place: place.at)
    return result


def _prove_safely(view: _View, anchor: _Anchor, p: int, lo: int, hi: int) -> Place | None:
    try:
        return _prove(view, anchor, p, lo, hi)
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


def _candidates(target: _View, anchor: _Anchor, lo: int, hi: int) -> list[int]:
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
        if head and _edge_string(target, p, anchor.toks[anchor.hard[0].first].text, True) is None:
            continue
        if tail and _edge_string(target, p + n - 1, anchor.toks[anchor.hard[-1].first].text, False) is None:
            continue
        out.append(p)
    return out


def _edge_string(target: _View, p: int, fragment: str, head: bool) -> int | None:
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


def _blank(line: str) -> bool:
    return not line.strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


@dataclass
class _Region:
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


def _region(target: _View, anchor: _Anchor, p: int, t_first: int, t_last: int, lo: int, hi: int) -> _Region | None:
    a_toks, t_toks, n = anchor.toks, target.toks, len(anchor.hard)
    # Character span of the region in both texts (an edge string counts only the anchor's part).
    a_start, a_end = a_toks[0].start, a_toks[-1].end
    t_start, t_end = t_toks[t_first].start, t_toks[t_last].end
    if a_toks[0].partial == "head":
        t_start = _edge_string(target, p, a_toks[0].text, True)
    if a_toks[-1].partial == "tail":
        t_end = _edge_string(target, p + n - 1, a_toks[-1].text, False)
    tw, aw, lines = target.where, anchor.where, target.lines
    t0, t1 = tw.of(t_start), tw.of(t_end - 1)
    k0, k1 = aw.of(a_start), aw.of(a_end - 1)
    if t0 < lo or t1 >= hi:
        return None
    glued_head = not _blank(lines[t0][: tw.col(t_start)])
    suffix = lines[t1][t_end - tw.starts[t1] :].strip()
    if suffix.startswith("#") and a_toks[-1].kind != "comment":
        return None  # a comment on the anchor's last line: formatters never add one (a change, as for text)
    glued_tail = bool(suffix)
    # The text outside the region: whole lines where the region starts (ends) a line, else the
    # target's code before (after) the anchor's first (last) token on that line.
    return _Region(
        t_first, t_last, t_start, t_end, t0, t1, a_start, a_end, k0, k1, glued_head, glued_tail,
        t_start if glued_head else tw.starts[t0],
        t_end if glued_tail else tw.starts[t1] + len(lines[t1]),
        a_start if glued_head else aw.starts[k0],
        a_end if glued_tail else aw.starts[k1] + len(anchor.lines[k1]),
    )


def _prove(target: _View, anchor: _Anchor, p: int, lo: int, hi: int) -> Place | None:
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
    placed = _layout_ops(target, anchor, p, r.t0, r.t1, r.k0, r.k1, lo, hi, r.glued_head, r.glued_tail)
    if placed is None:
        return None  # blank lines where the target has code: not the anchor's context
    if isinstance(placed, str):
        return Place(r.t0, r.t_start, None, placed)
    start, end, ops = placed
    lines = target.lines
    span = target.around(min(start, r.t0), max(end, r.t1 + 1))
    meant_trees = {_snippet_tree(m, span, len(m) - len(lines)) for m in meant_texts}
    if len(meant_trees) > 1:
        return Place(r.t0, r.t_start, None, "what it does depends on where a parenthesis the formatter dropped was")
    (meant,) = meant_trees
    out = _written(lines, start, end, ops)
    if _snippet_tree(out, span, len(out) - len(lines)) != meant:
        return Place(r.t0, r.t_start, None, "the hunk cannot be written in the new layout without changing what it does")
    # (written == meant == None: the hunk's own lines are not valid Python, in either layout; the
    # engine refuses that as invalid-python, as it does for a hunk placed by its text.)
    return Place(r.t0, r.t_start, Match(start, end, tuple(ops)))


def _indents_agree(target: _View, anchor: _Anchor, p: int) -> bool:
    """A statement that starts a line in the target, if it starts a line of the anchor too, is
    indented alike there (cheap; step 1 of _prove would refuse it anyway)."""
    a_toks, t_toks, tw, aw = anchor.toks, target.toks, target.where, anchor.where
    for j, h in enumerate(anchor.hard):
        tt, at = t_toks[target.hard[p + j].first], a_toks[h.first]
        t_line, a_line = target.lines[tw.of(tt.start)], anchor.lines[aw.of(at.start)]
        starts_both = tt.depth == 0 and tw.col(tt.start) == _indent(t_line) and aw.col(at.start) == _indent(a_line)
        if starts_both and t_line[: _indent(t_line)] != a_line[: _indent(a_line)]:
            return False
    return True


def _proven_region(target: _View, anchor: _Anchor, p: int, lo: int, hi: int) -> tuple[_Region, list[tuple[str, str]]] | None:
    """The region whose text the anchor's stands for, with the readings of the text outside it
    ((pre, post) pairs) under which the anchor's text there gives the target's tree; None if none.

    Soft tokens at the edges: the target's are taken as far as they close (open) the same brackets
    as the anchor's do, whatever parentheses and commas the formatter added or dropped; or as the
    anchor has them (when a formatter's parentheses around the anchor skew the count). Trees are
    compared over the statements around the region: elsewhere the texts are the same."""
    a_toks, t_toks, a_hard, t_hard = anchor.toks, target.toks, anchor.hard, target.hard
    n = len(a_hard)
    firsts = _edge(t_toks, t_hard[p].first, t_hard[p + n - 1].last, t_hard[p - 1].last + 1 if p else 0,
                   _brackets(a_toks, a_hard[0].first, a_hard[-1].last, 0, True), True)
    lasts = _edge(t_toks, t_hard[p + n - 1].last, t_hard[p].first,
                  t_hard[p + n].first - 1 if p + n < len(t_hard) else len(t_toks) - 1,
                  _brackets(a_toks, a_hard[-1].last, a_hard[0].first, len(a_toks) - 1, False), False)
    for t_first, t_last in itertools.product(firsts, lasts):
        r = _region(target, anchor, p, t_first, t_last, lo, hi)
        if r is None:
            continue
        edges = _edges(target, anchor, p, t_first, t_last)
        if edges is None:
            continue
        span = target.around(r.t0, r.t1 + 1)
        want = target.tree(span)
        if want is None:
            continue
        for readings in _outsides(target, anchor, p, t_first, t_last, r.cut_start, r.cut_end, edges):
            proven = _same_tree_readings(target, anchor, r, span, want, readings)
            if proven:
                return r, proven
    return None


def _same_tree_readings(target: _View, anchor: _Anchor, r: _Region, span, want, readings) -> list[tuple[str, str]]:
    """The readings under which the anchor's text in the region parses to `want`; [] as soon as one
    parses to another tree (the code there is not the anchor's)."""
    proven: list[tuple[str, str]] = []
    for pre, post in readings:
        candidate = (pre + anchor.text[r.a_from : r.a_to] + post).split("\n")
        tree = _snippet_tree(candidate, span, len(candidate) - len(target.lines))
        if tree is not None and tree != want:
            return []
        if tree is not None:
            proven.append((pre, post))
    return proven


def _meant_texts(anchor: _Anchor, r: _Region, h0: int, h1: int, outside: list[tuple[str, str]]) -> list[list[str]]:
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


def _written(lines: Sequence[str], start: int, end: int, ops: list[tuple[str, str]]) -> list[str]:
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


def _layout_ops(
    target: _View, anchor: _Anchor, p: int, t0: int, t1: int, k0: int, k1: int, lo: int, hi: int,
    glued_head: bool, glued_tail: bool,
) -> tuple[int, int, list[tuple[str, str]]] | str | None:
    """The hunk as ops over target lines: chunks of lines that hold the same tokens in both layouts
    are kept, removed or (when they mix both) rewritten; `+` lines go in between chunks. A string
    says why it cannot be written there; None: the anchor's blank lines are code in the target."""
    hunk, hidx = anchor.hunk_lines, anchor.hunk_index
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
        edge = (c == 0 and glued_head) or (c == last_chunk and glued_tail)
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
    while have < want and t1 + have + 1 < hi and _blank(target.lines[t1 + have + 1]):
        have += 1
    if want and not have and any(not _blank(line) for line in target.lines[t1 + 1 :]):
        return None
    _gap_ops(target, ops, trail_items, t1 + 1, have)
    return start, t1 + 1 + have, ops


def _chunk_cuts(target: _View, anchor: _Anchor, p: int, t0: int, t1: int, k0: int, k1: int) -> tuple[list[int], list[int]]:
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


def _leading_gap(target: _View, ops: list[tuple[str, str]], lead_items: list[tuple[str, str]], t0: int, lo: int) -> int | None:
    """The hunk lines before the anchor's first token over the blank target lines above it (matched
    bottom-up), appended to `ops`; the first target line they cover. None when the anchor has blank
    lines there and the target none: blank lines carry no code, but a formatter removes one only at
    the start of a block (or collapses several into one), and before the anchor's first line whether
    a block started there cannot be seen from the anchor, so the blank line must be there."""
    want = sum(1 for op, _ in lead_items if op != "+")
    have = 0
    while have < want and t0 - have - 1 >= lo and _blank(target.lines[t0 - have - 1]):
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


def _chunk_ops(target: _View, ops: list[tuple[str, str]], inside: Sequence[tuple[str, str]], span: range, edge: bool) -> str | None:
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


def _gap_ops(target: _View, ops: list[tuple[str, str]], items: list[tuple[str, str]], first: int, blanks: int) -> None:
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


def _opens_block(target: _View, offset: int, inside: bool = False) -> bool:
    """Whether the code right before `offset` ends a block's header (`:`), where formatters drop
    blank lines; `inside`: or is inside brackets, where black drops them too."""
    k = bisect.bisect_left(target.starts, offset) - 1
    while k >= 0 and target.toks[k].kind == "comment":
        k -= 1
    if k < 0:
        return False
    t = target.toks[k]
    depth = _depth_between(target.toks, k, True)
    return (t.text == ":" and t.kind == "op" and depth == 0) or (inside and depth > 0)


def _walk(toks: Sequence[_Tok], span_from: int, span_to: int, edge: int, forward: bool) -> list[tuple[int, int]]:
    """Bracket counts walking out of a span of tokens into the soft tokens at one of its edges.

    The span is walked from span_from to span_to (forward: increasing), counting the brackets it
    leaves open toward that edge; then each token up to `edge` is taken in turn. Entry k is
    (brackets closed beyond the span, brackets still open) after taking k edge tokens.
    """
    opens, closes = (_OPEN, _CLOSE) if forward else (_CLOSE, _OPEN)
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


def _brackets(toks: Sequence[_Tok], near: int, far: int, edge: int, leading: bool) -> tuple[int, int, list[str]]:
    """For the anchor: (closed beyond, still open, edge token texts) with all its edge tokens on one side."""
    beyond, still = _walk(toks, far, near, edge, not leading)[-1]
    texts = [t.text for t in (toks[edge:near] if leading else toks[near + 1 : edge + 1])]
    return beyond, still, texts


def _edge(toks: Sequence[_Tok], near: int, far: int, limit: int, want: tuple[int, int, list[str]], leading: bool) -> list[int]:
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
    openers = sum(1 for text in want[2] if text in _OPEN)
    allowed = [k for k in range(len(steps)) if sum(1 for text in taken(k) if text in _OPEN) <= openers]
    best = [min(allowed, key=cost)]
    same = len(want[2])
    if same < len(steps) and same != best[0] and taken(same) == want[2]:
        best.append(same)
    return [near - k if leading else near + k for k in best]


@dataclass(frozen=True)
class _Edges:
    """Whether the region's first (last) token is at an open edge: code of the same logical line
    lies before (after) it, in the target or in what the anchor came from, which the anchor, being
    whole lines, cannot show."""

    head_open: bool
    tail_open: bool


def _edges(target: _View, anchor: _Anchor, p: int, t_first: int, t_last: int) -> _Edges | None:
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
        return _Edges(False, False)
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
    a_closers, a_openers = _unmatched(a_toks, 0, len(a_toks))
    return _Edges(head_open or bool(a_closers), tail_open or bool(a_openers) or a_backslash)


def _soft_texts(toks: Sequence[_Tok], lo: int, hi: int) -> list[str]:
    return [t.text for t in toks[lo:hi] if t.kind == "op" and t.text in _SOFT]


def _shown(texts: list[str]) -> list[str]:
    """Edge soft tokens as far as they are code: a comma right before a closing bracket, both on this
    side of the edge, is layout (a magic trailing comma); any other is code."""
    return [x for i, x in enumerate(texts) if not (x == "," and i + 1 < len(texts) and texts[i + 1] in _CLOSE)]


def _same_pieces(target: _View, anchor: _Anchor, p: int, j: int) -> bool:
    """An edge string run compared piece by piece, each by value (not joined: the anchor does not
    show where its concatenation ends)."""
    a, t = anchor.hard[j], target.hard[p + j]
    if not a.key.startswith("s") or a.first == a.last and t.first == t.last:
        return True
    a_pieces = [_string_key([anchor.toks[k].text]) for k in range(a.first, a.last + 1)]
    t_pieces = [_string_key([target.toks[k].text]) for k in range(t.first, t.last + 1)]
    return a_pieces == t_pieces


def _open_before(target: _View, first: int) -> bool:
    """Whether code of the same logical line comes before target token `first`."""
    toks, text = target.toks, target.text
    k = first - 1
    while k >= 0 and toks[k].kind == "comment":
        k -= 1
    if k < 0:
        return False
    gap = text[toks[k].end : toks[first].start]
    return _depth_between(toks, k, True) > 0 or "\n" not in gap.replace("\\\n", "") or "\\\n" in gap


def _open_after(target: _View, last: int) -> tuple[bool, bool]:
    """Whether code of the same logical line comes after target token `last`; and whether it does
    by a backslash continuation."""
    toks, text = target.toks, target.text
    k = last + 1
    while k < len(toks) and toks[k].kind == "comment":
        k += 1
    if k >= len(toks):
        return False, False
    gap = text[toks[last].end : toks[k].start]
    backslash = "\\\n" in gap and _depth_between(toks, last, True) == 0
    return _depth_between(toks, last, True) > 0 or "\n" not in gap.replace("\\\n", "") or backslash, backslash


def _partners(toks: Sequence[_Tok]) -> list[int]:
    """For each bracket token, the index of the bracket that closes (opens) it; -1 elsewhere."""
    partner, stack = [-1] * len(toks), []
    for i, t in enumerate(toks):
        if t.kind == "op":
            if t.text in _OPEN:
                stack.append(i)
            elif t.text in _CLOSE and stack:
                j = stack.pop()
                partner[i], partner[j] = j, i
    return partner


def _unmatched(toks: Sequence[_Tok], lo: int, hi: int) -> tuple[list[int], list[int]]:
    """Brackets of toks[lo:hi] left unmatched inside that range: (closers, openers), in order."""
    closers, stack = [], []
    for i in range(lo, hi):
        t = toks[i]
        if t.kind == "op":
            if t.text in _OPEN:
                stack.append(i)
            elif t.text in _CLOSE:
                if stack:
                    stack.pop()
                else:
                    closers.append(i)
    return closers, stack


def _outsides(target: _View, anchor: _Anchor, p: int, t_first: int, t_last: int, cut_start: int, cut_end: int,
              edges: _Edges):
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
    a_close, a_open = _unmatched(anchor.toks, 0, len(anchor.toks))
    t_close, t_open = _unmatched(toks, t_first, t_last + 1)
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


def _without_added(target: _View, closing: _Brackets, opening: _Brackets, same, cut_start: int, cut_end: int,
                   edges: _Edges):
    """Readings of the outside text without the parentheses the formatter added around the region
    (at most 8 ways to tell which they are). closing/opening: (region's unmatched brackets, the
    anchor's, the anchor's texts). None left out beyond an open edge (see _edges)."""
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


def _extra_halves(target: _View, t_brackets: list[int], a_brackets: list[int], a_text: list[str], same, half: str):
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


def _ends_expression(t: _Tok) -> bool:
    if t.kind in ("number", "string"):
        return True
    if t.kind == "name":
        return not keyword.iskeyword(t.text) or t.text in ("True", "False", "None")
    return t.kind == "op" and t.text in _ENDS_EXPRESSION


def _put_back(target: _View, t_brackets: list[int], a_brackets: list[int], anchor: _Anchor, same, edge: int,
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


def _put_back_places(target: _View, t_brackets: list[int], a_brackets: list[int], anchor: _Anchor, same, edge: int,
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


def _depth_between(toks: Sequence[_Tok], k: int, after: bool) -> int:
    """Open brackets in the gap after (else before) token k."""
    t = toks[k]
    if t.kind == "op":
        if after and t.text in _OPEN:
            return t.depth + 1
        if not after and t.text in _CLOSE:
            return t.depth + 1
    return t.depth


def _levels(target: _View, inner: int, outer: int, before: bool) -> list[int]:
    """From token `inner` away from the region (down to `outer`, exclusive), the tokens k on its
    bracket level and statement where the parenthesis may go: `(` in the gap before k when the token
    before k cannot end an expression; `)` in the gap after k when k ends one."""
    toks, text = target.toks, target.text
    level = _depth_between(toks, inner, not before)
    out: list[int] = []
    step = -1 if before else 1
    k = inner
    while 0 <= k < len(toks) and k != outer:
        depth = _depth_between(toks, k, not before)
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


def _without(target: _View, drop: list[int], lo: int, hi: int, before: bool) -> str | None:
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
        depth = t.depth + (1 if t.kind == "op" and t.text in _OPEN else 0)
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


def _cut(toks: Sequence[_Tok], prev_last: int, first: int) -> int:
    """The token a chunk that starts with compared token `first` begins with: opening parentheses
    right before it belong to it."""
    c = first
    while c - 1 > prev_last and toks[c - 1].text == "(" and toks[c - 1].kind == "op":
        c -= 1
    return c


def _covered(
    count: int, toks: Sequence[_Tok], where: _Lines, lo: int, hi: int, starts: Sequence[int] | None = None
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
