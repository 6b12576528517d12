"""The layout matcher's tokens (issue 10): a fragment of Python read as its tokenizer reads it, and
the keys tokens compare by, with what a formatter changes (soft tokens, quotes, string splits,
number spellings, the space after `#`) left out."""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Tokens a formatter adds or drops (redundant parentheses, magic trailing commas, `a; b` split in
# two lines): left out of the comparison, which the syntax-tree proof then makes exact.
SOFT = frozenset(("(", ")", ",", ";"))
OPEN, CLOSE = frozenset("([{"), frozenset(")]}")

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
class Tok:
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


def scan(text: str, inside: str | None = None) -> list[Tok] | None:
    """Python tokens of `text`, which may be a fragment: unbalanced brackets are fine, and `inside`
    says it begins inside a triple-quoted string. None when `inside` does not close in `text`."""
    toks: list[Tok] = []
    pos, n, depth = 0, len(text), 0
    if inside is not None:
        m = _BODY[inside].match(text)
        if m is None:
            return None
        toks.append(Tok("string", text[: m.end()], 0, m.end(), "head"))
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
            depth -= value in CLOSE
            toks.append(Tok("op", value, pos, end, "", depth))
            depth += value in OPEN
        elif kind != "space":
            toks.append(Tok(kind, m.group(), pos, end, "", depth))
        pos = end
    return toks


def _scan_unreadable(text: str, pos: int, depth: int, toks: list[Tok]) -> int:
    """What no token pattern reads at `pos`: a triple-quoted string the fragment ends inside, an
    unterminated one-line string, or one stray character; appended to `toks`. Where to go on."""
    n = len(text)
    m = _STRING_START.match(text, pos)
    if m and len(m.group(1)) == 3:  # the fragment ends inside this string
        toks.append(Tok("string", text[pos:], pos, n, "tail", depth))
        return n
    if m:  # an unterminated one-line string
        eol = text.find("\n", pos)
        eol = n if eol < 0 else eol
        toks.append(Tok("error", text[pos:eol], pos, eol, "", depth))
        return eol
    toks.append(Tok("error", text[pos], pos, pos + 1, "", depth))
    return pos + 1


_PLAIN = re.compile(r"(?i:r|u)?('''|\"\"\"|'|\")")


def string_key(pieces: Sequence[str]) -> str:
    """Adjacent string literals compare by what they evaluate to, not by quotes or where they split."""
    values = []
    for piece in pieces:  # the common case, without a parser: no escapes, bytes or f-strings
        m = _PLAIN.match(piece)
        if m is None or "\\" in piece:
            break
        values.append(piece[m.end() : len(piece) - len(m.group(1))])
    else:
        value = "".join(values)
        return "s" + repr(doc(value) if "\n" in value else value)
    source = " ".join(pieces)
    try:
        node = ast.parse("(" + source + "\n)", mode="eval").body
    except SyntaxError:
        return "s?" + source
    if isinstance(node, ast.Constant):
        constant = node.value
        # A multi-line string may be a docstring: compared as doc has it (the tree decides).
        return "s" + repr(doc(constant) if isinstance(constant, str) and "\n" in constant else constant)
    return "s" + ast.dump(node)


def _number_key(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return "d?" + text.lower()
    return "d" + type(value).__name__ + repr(value)


@dataclass(slots=True)
class Hard:
    """A token the comparison keeps (a run of adjacent strings is one), over full tokens first..last."""

    key: str
    first: int
    last: int


def hard(toks: Sequence[Tok], joined: bool = True) -> list[Hard]:
    """The compared tokens. `joined`: adjacent strings are one (a formatter may join them); else
    each string piece is its own (an anchor may end or start in the middle of a long concatenation)."""
    out: list[Hard] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "string" and not t.partial:
            j = i
            while joined and j + 1 < len(toks) and toks[j + 1].kind == "string" and not toks[j + 1].partial:
                j += 1
            out.append(Hard(string_key([toks[k].text for k in range(i, j + 1)]), i, j))
            i = j + 1
            continue
        if t.kind == "op" and t.text in SOFT:
            i += 1
            continue
        if t.kind == "string":
            key = "p" + t.partial  # compared by text, at the edges only (see edge_string)
        elif t.kind == "comment":
            key = "#" + t.text[1:].strip()  # black and ruff write `#x` as `# x`
        elif t.kind == "number":
            key = _number_key(t.text)
        else:
            key = t.kind[0] + t.text
        out.append(Hard(key, i, i))
        i += 1
    return out


class Lines:
    """Line numbers of character offsets in a text."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def col(self, offset: int) -> int:
        return offset - self.starts[self.of(offset)]


def doc(value: str) -> str:
    """A docstring as black and ruff compare it: each line stripped (both re-indent docstrings and
    strip their trailing spaces, which vLLM 0.11.0 has)."""
    return "\n".join(line.strip() for line in value.strip().split("\n"))


def blank(line: str) -> bool:
    return not line.strip()


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def partners(toks: Sequence[Tok]) -> list[int]:
    """For each bracket token, the index of the bracket that closes (opens) it; -1 elsewhere."""
    partner, stack = [-1] * len(toks), []
    for i, t in enumerate(toks):
        if t.kind == "op":
            if t.text in OPEN:
                stack.append(i)
            elif t.text in CLOSE and stack:
                j = stack.pop()
                partner[i], partner[j] = j, i
    return partner


def unmatched(toks: Sequence[Tok], lo: int, hi: int) -> tuple[list[int], list[int]]:
    """Brackets of toks[lo:hi] left unmatched inside that range: (closers, openers), in order."""
    closers, stack = [], []
    for i in range(lo, hi):
        t = toks[i]
        if t.kind == "op":
            if t.text in OPEN:
                stack.append(i)
            elif t.text in CLOSE:
                if stack:
                    stack.pop()
                else:
                    closers.append(i)
    return closers, stack


def depth_between(toks: Sequence[Tok], k: int, after: bool) -> int:
    """Open brackets in the gap after (else before) token k."""
    t = toks[k]
    if t.kind == "op":
        if after and t.text in OPEN:
            return t.depth + 1
        if not after and t.text in CLOSE:
            return t.depth + 1
    return t.depth
