"""The replacement's code in upstream's layout: edits on upstream's lines, found by a statement diff.

Statements are compared as code (`code.dump`), block by block: equal statements keep upstream's
text; a compound statement whose header is equal is entered and its blocks compared the same way;
anything else is upstream's statements out and the replacement's in, re-indented to upstream's
block (lines inside a multi-line string are never touched). So a copy re-wrapped by another
formatter gives a hunk only where its code changed (issue 16: UCM's `LlamaDecoderLayer.forward`
re-wraps four lines to add two statements). A statement that shares a line with another (`a; b`,
`if x: y`) cannot be cut out on whole lines: the statement around it is replaced instead.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from dataclasses import dataclass, field

from vllm_surgeon.adopt import code

Func = ast.FunctionDef | ast.AsyncFunctionDef


class Unclean(ValueError):
    """A statement that cannot be cut out of its text on whole lines."""


@dataclass
class Text:
    """One file's lines, and the lines that continue a multi-line string (never re-indented)."""

    lines: list[str]
    verbatim: frozenset[int] = frozenset()

    @classmethod
    def of(cls, text: str) -> Text:
        return cls(text.split("\n"), frozenset(_string_continuations(text)))


def _string_continuations(text: str) -> set[int]:
    """0-based lines that lie inside a string token begun on an earlier line."""
    inside: set[int] = set()
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    open_rows: list[int] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == fstring_start:
                open_rows.append(tok.start[0])
                continue
            if tok.type == fstring_end and open_rows:
                start = open_rows.pop()
                inside.update(range(start, tok.end[0]))
                continue
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0], tok.end[0]))  # rows start..end-1 are 1-based start+1..end
    except (tokenize.TokenError, SyntaxError):
        pass
    return inside


@dataclass
class Edit:
    """Replace upstream's lines [start, end) with `lines`; `seq` orders edits at one position."""

    start: int
    end: int
    lines: list[str]
    seq: int = 0


def apply_edits(lines: list[str], edits: list[Edit]) -> list[str]:
    """`lines` with the edits made; edits never overlap (insertions at one line keep their order)."""
    return diff_edits(lines, edits)[0]


Opcode = tuple[str, int, int, int, int]


def diff_edits(lines: list[str], edits: list[Edit]) -> tuple[list[str], list[Opcode]]:
    """`lines` with the edits made, and the change as difflib opcodes: each edit's own lines diffed
    against the lines it replaces (so a re-laid statement shows only its changed lines), never a
    line paired across two statements."""
    out: list[str] = []
    opcodes: list[Opcode] = []
    cursor = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.seq)):
        if edit.start < cursor:
            raise ValueError(f"overlapping edits at line {edit.start + 1}")
        if edit.start > cursor:
            opcodes.append(("equal", cursor, edit.start, len(out), len(out) + edit.start - cursor))
        out += lines[cursor:edit.start]
        inner = difflib.SequenceMatcher(None, lines[edit.start:edit.end], edit.lines, autojunk=False)
        for tag, i1, i2, j1, j2 in inner.get_opcodes():
            opcodes.append((tag, edit.start + i1, edit.start + i2, len(out) + j1, len(out) + j2))
        out += edit.lines
        cursor = edit.end
    if cursor < len(lines):
        opcodes.append(("equal", cursor, len(lines), len(out), len(out) + len(lines) - cursor))
    return out + lines[cursor:], opcodes


def span(stmt: ast.stmt) -> tuple[int, int]:
    """0-based [first, end) lines of a statement, its decorators included."""
    first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    assert stmt.end_lineno is not None
    return first - 1, stmt.end_lineno


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _chars(line: str, byte_col: int) -> int:
    """A column as `ast` gives it (UTF-8 bytes) in characters."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def _check_clean(text: Text, stmt: ast.stmt) -> None:
    """Unclean unless the statement starts its first line and ends its last (a comment may follow)."""
    first, end = span(stmt)
    head = text.lines[first]
    decorated = bool(getattr(stmt, "decorator_list", None))
    if (decorated and not head.lstrip().startswith("@")) or (
        not decorated and head[: _chars(head, stmt.col_offset)].strip()
    ):
        raise Unclean(f"line {first + 1} holds more than this statement")
    tail = text.lines[end - 1]
    rest = tail[_chars(tail, stmt.end_col_offset or 0):].strip()
    if rest and not rest.startswith("#"):
        raise Unclean(f"line {end} holds more than this statement")


def reindent(text: Text, first: int, end: int, old: str, new: str) -> list[str]:
    """Lines [first, end) of `text` moved from indentation `old` to `new`; string continuations kept."""
    out = []
    spaces = set(old) <= {" "} and set(new) <= {" "}
    for i in range(first, end):
        line = text.lines[i]
        if i in text.verbatim:
            out.append(line)
        elif not line.strip():
            out.append("")
        elif line.startswith(old):
            out.append(new + line[len(old):])
        elif spaces and set(indent_of(line)) <= {" "}:  # a continuation less indented than its statement
            out.append(" " * max(0, len(indent_of(line)) + len(new) - len(old)) + line.lstrip())
        else:
            raise Unclean(f"line {i + 1}: mixed tabs and spaces")
    return out


_DEF = re.compile(r"^(\s*(?:async\s+)?def\s+)([A-Za-z_]\w*)")


Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
# Compound statements with one header and no handlers: a changed header is replaced alone (`_rehead`).
_REHEAD = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)


def header_end(text: Text, node: ast.stmt) -> int:
    """0-based line of the `:` that ends a compound statement's header (`def f(...) -> T:`,
    `if (a and\n b):`, `elif x:`, `for a in b:`, `with x as y:`)."""
    start = node.lineno - 1
    lines = iter(line + "\n" for line in text.lines[start:])
    depth = 0
    seen_keyword = False
    keywords = ("def", "class") if isinstance(node, Def) else ("if", "elif", "while", "for", "with")
    try:
        for tok in tokenize.generate_tokens(lambda: next(lines, "")):
            if tok.type == tokenize.NAME and tok.string in keywords:
                seen_keyword = True
            elif tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            elif tok.type == tokenize.OP and tok.string == ":" and depth == 0 and seen_keyword:
                return start + tok.start[0] - 1
    except (tokenize.TokenError, SyntaxError):
        pass
    raise Unclean(f"line {start + 1}: the end of the header was not found")


@dataclass
class Relayout:
    """Edits on upstream's text `up` that give the replacement's code, read from `rep`."""

    up: Text
    rep: Text
    edits: list[Edit] = field(default_factory=list)

    def function(self, u: Func, r: Func, decorators: list[tuple[str, ast.expr]], name: str, whole: bool = False) -> list[Edit]:
        """Edits turning def `u` into def `r`, named `name`, with `decorators` ((side, node): side
        'up' for one of u's own, 'rep' for one written in the replacement); `whole`: r's body in place
        of u's as one block (the fallback when finer edits do not give r's code)."""
        self._decorators(u, decorators)
        u_end, r_end = header_end(self.up, u), header_end(self.rep, r)
        if code.signature_key(u) != code.signature_key(r):
            self._signature(u, r, u_end, r_end, name)
        at, uind = self._body_place(u, u_end)
        mark = len(self.edits)
        try:
            if whole:
                raise Unclean("asked for the whole body")
            self._block(code.body_of(u), code.body_of(r), at, uind)
        except Unclean:
            del self.edits[mark:]
            self._whole_body(u, r, at, uind)
        return self.edits

    # -- the def line and its decorators

    def _decorators(self, u: Func, wanted: list[tuple[str, ast.expr]]) -> None:
        if [code.dump(d) for d in u.decorator_list] == [code.dump(d) for _, d in wanted]:
            return
        def_line = u.lineno - 1
        first = u.decorator_list[0].lineno - 1 if u.decorator_list else def_line
        uind = indent_of(self.up.lines[def_line])
        lines: list[str] = []
        for side, node in wanted:
            text = self.up if side == "up" else self.rep
            start, end = node.lineno - 1, node.end_lineno or node.lineno
            if not text.lines[start].lstrip().startswith("@"):
                raise Unclean(f"line {start + 1}: a decorator that does not start its line")
            lines += reindent(text, start, end, indent_of(text.lines[start]), uind)
        self._edit(first, def_line, lines)

    def _signature(self, u: Func, r: Func, u_end: int, r_end: int, name: str) -> None:
        if code.body_of(r) and r.body[0].lineno - 1 <= r_end:
            raise Unclean(f"line {r.lineno}: the body starts on the def line")
        lines = reindent(self.rep, r.lineno - 1, r_end + 1, indent_of(self.rep.lines[r.lineno - 1]),
                         indent_of(self.up.lines[u.lineno - 1]))
        renamed = _DEF.sub(lambda m: m.group(1) + name, lines[0], count=1)
        if r.name != name and not _DEF.match(lines[0]):
            raise Unclean(f"line {r.lineno}: the def's name is not on its first line")
        self._edit(u.lineno - 1, u_end + 1, [renamed] + lines[1:])

    def _body_place(self, node: Def, end: int) -> tuple[int, str]:
        """Where statements go in an empty body (after the docstring or header), and its indentation."""
        body = node.body
        if body[0].lineno - 1 <= end:
            raise Unclean(f"line {body[0].lineno}: the body starts on the header's line")
        doc = code.docstring(node)
        at = doc.end_lineno if doc is not None and doc.end_lineno is not None else end + 1
        return at, indent_of(self.up.lines[body[0].lineno - 1])

    def _whole_body(self, u: Func, r: Func, at: int, uind: str) -> None:
        """Every statement of u's body (docstring aside) out, r's in: when no finer edit can be cut out."""
        ub, rb = code.body_of(u), code.body_of(r)
        if ub:
            self._check_group(self.up, ub)
            first, end = span(ub[0])[0], span(ub[-1])[1]
        else:
            first = end = at
        lines = []
        if rb:
            self._check_group(self.rep, rb)
            r_first, r_end = span(rb[0])[0], span(rb[-1])[1]
            lines = reindent(self.rep, r_first, r_end, indent_of(self.rep.lines[r_first]), uind)
        self._edit(first, end, lines)

    # -- blocks of statements

    def _block(self, ub: list[ast.stmt], rb: list[ast.stmt], at: int, uind: str) -> None:
        """Edits turning upstream's block `ub` into `rb`; `at`: where statements go when `ub` is empty."""
        matcher = difflib.SequenceMatcher(None, [self._key(s) for s in ub], [self._key(s) for s in rb], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            before = span(ub[i1 - 1])[1] if i1 > 0 else (self._above(span(ub[0])[0]) if ub else at)
            if tag == "delete":
                self._delete(ub[i1:i2])
            elif tag == "insert":
                self._insert(rb[j1:j2], before, uind, ub[i1] if i1 < len(ub) else None)
            elif tag == "replace":
                self._replace(ub[i1:i2], rb[j1:j2], before, uind)

    def _replace(self, us: list[ast.stmt], rs: list[ast.stmt], before: int, uind: str) -> None:
        """A run of changed statements: pairs with equal headers are entered, the rest swapped."""
        matcher = difflib.SequenceMatcher(None, [self._head(s, self.up) for s in us], [self._head(s, self.rep) for s in rs],
                                          autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                for u, r in zip(us[i1:i2], rs[j1:j2], strict=True):
                    self._pair(u, r)
            elif tag == "delete":
                self._delete(us[i1:i2])
            elif tag == "insert":
                self._insert(rs[j1:j2], span(us[i1 - 1])[1] if i1 > 0 else before, uind, us[i1] if i1 < len(us) else None)
            elif i2 - i1 == j2 - j1:
                for u, r in zip(us[i1:i2], rs[j1:j2], strict=True):
                    if not self._rehead(u, r):
                        self.swap([u], [r])
            else:
                self.swap(us[i1:i2], rs[j1:j2])

    def _rehead(self, u: ast.stmt, r: ast.stmt) -> bool:
        """Two statements of one kind and shape whose headers differ (`if a:` / `if b:`): the header
        line(s) replaced and their blocks compared, so unchanged statements inside keep upstream's
        text. False (nothing done) when that cannot be cut out on whole lines."""
        if type(u) is not type(r) or not isinstance(u, _REHEAD) or self._shape(u, self.up) != self._shape(r, self.rep):
            return False
        mark = len(self.edits)
        try:
            _check_clean(self.up, u)
            _check_clean(self.rep, r)
            u_end, r_end = header_end(self.up, u), header_end(self.rep, r)
            if code.first_line(u) <= u_end or code.first_line(r) <= r_end:
                raise Unclean(f"line {u.lineno}: the body starts on the header's line")
            self._edit(u.lineno - 1, u_end + 1, reindent(self.rep, r.lineno - 1, r_end + 1, indent_of(self.rep.lines[r.lineno - 1]),
                                                         indent_of(self.up.lines[u.lineno - 1])))
            for ublock, rblock in zip(code.blocks(u), code.blocks(r), strict=True):
                self._block(ublock, rblock, 0, indent_of(self.up.lines[span(ublock[0])[0]]))
        except Unclean:
            del self.edits[mark:]
            return False
        return True

    def _shape(self, stmt: ast.stmt, text: Text) -> tuple:
        """What must agree for `_rehead`: the blocks there are, and whether the else is an elif."""
        orelse = getattr(stmt, "orelse", None)
        elif_ = bool(isinstance(stmt, ast.If) and orelse and len(orelse) == 1 and isinstance(orelse[0], ast.If)
                     and text.lines[orelse[0].lineno - 1].lstrip().startswith("elif"))
        return type(stmt), len(code.blocks(stmt)), elif_

    def _pair(self, u: ast.stmt, r: ast.stmt) -> None:
        """Two compound statements with the same header: their blocks compared, or u swapped for r."""
        if self._key(u) == self._key(r):
            return
        mark = len(self.edits)
        at = 0
        try:
            if isinstance(u, code.DEFS):
                at, _ = self._body_place(u, header_end(self.up, u))
            for ublock, rblock in zip(code.blocks(u), code.blocks(r), strict=True):
                if ublock:
                    self._block(ublock, rblock, 0, indent_of(self.up.lines[span(ublock[0])[0]]))
                else:  # a def whose body is only its docstring
                    self._block(ublock, rblock, at, indent_of(self.up.lines[code.first_line(u)]))
        except Unclean:
            del self.edits[mark:]
            self.swap([u], [r])

    def swap(self, us: list[ast.stmt], rs: list[ast.stmt]) -> None:
        """Upstream's statements `us` out, the replacement's `rs` in (re-indented to `us`'s place)."""
        self._check_group(self.up, us)
        self._check_group(self.rep, rs)
        first, end = span(us[0])[0], span(us[-1])[1]
        r_first, r_end = span(rs[0])[0], span(rs[-1])[1]
        lines = reindent(self.rep, r_first, r_end, indent_of(self.rep.lines[r_first]), indent_of(self.up.lines[first]))
        self._edit(first, end, lines)

    def _delete(self, us: list[ast.stmt]) -> None:
        self._check_group(self.up, us)
        self._edit(span(us[0])[0], span(us[-1])[1], [])

    def _insert(self, rs: list[ast.stmt], at: int, uind: str, following: ast.stmt | None) -> None:
        """The replacement's statements `rs` added at line `at`, with the comment written just above
        them; when that comment is upstream's own, above the `following` statement, they go below it."""
        self._check_group(self.rep, rs)
        r_first, r_end = span(rs[0])[0], span(rs[-1])[1]
        comments = self._comments_above(self.rep, r_first)
        if comments and following is not None:
            theirs = [line.strip() for line in self.rep.lines[comments:r_first]]
            first = span(following)[0]
            ours = [line.strip() for line in self.up.lines[self._comments_above(self.up, first):first]]
            if ours[len(ours) - len(theirs):] == theirs:
                at, comments = first, r_first  # upstream's comment stays where it is, above both
        self._edit(at, at, reindent(self.rep, comments, r_end, indent_of(self.rep.lines[r_first]), uind))

    @staticmethod
    def _comments_above(text: Text, first: int) -> int:
        """The first line of the comments written directly above line `first` of `text`."""
        while first > 0 and text.lines[first - 1].lstrip().startswith("#") and first - 1 not in text.verbatim:
            first -= 1
        return first

    def _above(self, first: int) -> int:
        """The first line of the comments written directly above upstream's line `first`."""
        return self._comments_above(self.up, first)

    def _check_group(self, text: Text, stmts: list[ast.stmt]) -> None:
        _check_clean(text, stmts[0])
        _check_clean(text, stmts[-1])

    def _edit(self, start: int, end: int, lines: list[str]) -> None:
        self.edits.append(Edit(start, end, lines, len(self.edits)))

    def _key(self, stmt: ast.stmt) -> str:
        return code.dump(stmt)

    def _head(self, stmt: ast.stmt, text: Text) -> str:
        """The header key, marked when the statement is an `elif` (it can only take another elif's place)."""
        if not code.is_compound(stmt):
            return code.dump(stmt)
        key = code.header_key(stmt)
        orelse = getattr(stmt, "orelse", None)
        if isinstance(stmt, ast.If) and orelse and len(orelse) == 1 and isinstance(orelse[0], ast.If):
            key += "elif" if text.lines[orelse[0].lineno - 1].lstrip().startswith("elif") else "else-if"
        return key
