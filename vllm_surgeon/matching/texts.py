"""The two texts the layout matcher compares (issue 10): the target module scanned once (tokens,
compared keys, lines, syntax tree, cached), the hunk's anchor read as one or more token readings,
and the syntax trees of statements that the proofs compare."""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence

from vllm_surgeon.core.scopes import blocks
from vllm_surgeon.matching.tokens import SOFT, Lines, Tok, doc, hard, partners, scan


def module_tree(text: str) -> str | None:
    """The syntax tree of a module as comparable text (no positions; `u''` and `''` alike; docstrings
    as doc has them), or None when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.kind = None
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            # A string statement: a docstring (or a no-op), wherever a snippet puts it.
            node.value.value = doc(node.value.value)
    return ast.dump(tree)


class Target:
    """A module's text, scanned once: tokens, comparison keys, lines, syntax tree."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.toks = scan(text) or []
        self.where = Lines(text)
        self.starts = [t.start for t in self.toks]
        self.partner = partners(self.toks)
        self._views: dict[bool, View] = {}
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

    def view(self, joined: bool) -> View:
        if joined not in self._views:
            self._views[joined] = View(self, joined)
        return self._views[joined]

    def tree(self, span: tuple[int, int]) -> str | None:
        if span not in self._trees:
            self._trees[span] = snippet_tree(self.lines, span, 0)
        return self._trees[span]


def _first(node: ast.stmt) -> int:
    """A statement's first line, 0-based, decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())]) - 1


def _end(node: ast.stmt) -> int:
    """A statement's last line, 1-based (ast.parse sets end_lineno on every statement)."""
    assert node.end_lineno is not None
    return node.end_lineno


def snippet_tree(lines: Sequence[str], span: tuple[int, int], grown: int) -> str | None:
    """The tree of lines span[0] .. span[1] + grown (a statement, parsed on its own: inside an
    `if 1:` when it is indented), as module_tree compares it."""
    part = lines[span[0] : span[1] + grown]
    first = next((line for line in part if line.strip() and not line.lstrip().startswith("#")), "")
    text = "\n".join(part)
    return module_tree("if 1:\n" + text if first[:1] in (" ", "\t") else text)


class View:
    """A target's compared tokens, with adjacent strings joined or not (see hard), beside the
    target's own text, tokens and lines (the same objects, not copies)."""

    def __init__(self, target: Target, joined: bool) -> None:
        self.target = target
        self.text, self.lines, self.toks = target.text, target.lines, target.toks
        self.where, self.starts, self.partner = target.where, target.starts, target.partner
        self.hard = hard(target.toks, joined)
        self.keys = [h.key for h in self.hard]
        self.first_line = [target.where.of(target.toks[h.first].start) for h in self.hard]
        self.last_line = [target.where.of(target.toks[h.last].end - 1) for h in self.hard]
        self.by_key: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            self.by_key.setdefault(key, []).append(i)

    def around(self, start: int, end: int) -> tuple[int, int]:
        return self.target.around(start, end)

    def tree(self, span: tuple[int, int]) -> str | None:
        return self.target.tree(span)


@functools.lru_cache(maxsize=8)
def target_of(text: str) -> Target:
    return Target(text)


class Anchor:
    """A hunk's anchor (context and removed lines) read as one reading of its tokens."""

    def __init__(self, hunk_lines: Sequence[tuple[str, str]], toks: list[Tok], text: str, joined: bool = True) -> None:
        self.hunk_lines = hunk_lines
        self.toks = toks
        self.joined = joined
        self.hard = hard(toks, joined)
        self.where = Lines(text)
        # anchor line -> index in hunk_lines
        self.hunk_index = [i for i, (op, _) in enumerate(hunk_lines) if op != "+"]
        self.lines = [hunk_lines[i][1] for i in self.hunk_index]
        self.text = text


def anchor_readings(hunk_lines: Sequence[tuple[str, str]]) -> list[Anchor]:
    """The anchor's token readings: as code, and (if it has triple quotes) as starting inside a string."""
    text = "\n".join(text for op, text in hunk_lines if op != "+")
    out = []
    for inside in (None, '"""', "'''"):
        if inside is not None and inside not in text:
            continue
        toks = scan(text, inside)
        if toks and any(t.kind != "op" or t.text not in SOFT for t in toks):
            out.append(Anchor(hunk_lines, toks, text))
            # An anchor that starts or ends with a string may cut a concatenation the target has
            # in more pieces: read its strings piece by piece too.
            edges = (out[-1].hard[0], out[-1].hard[-1])
            if any(toks[h.first].kind == "string" and not toks[h.first].partial for h in edges):
                out.append(Anchor(hunk_lines, toks, text, joined=False))
    return out
