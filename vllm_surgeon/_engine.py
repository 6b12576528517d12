"""The hunk engine: decides, on source text alone, which hunk sets apply and what each module becomes.

It never imports vLLM. Every hunk of every set is checked against the original sources before
anything is applied; a set applies whole or not at all. Sets stack in the order given: a later
set whose anchor touches lines an earlier set changed (or no longer finds its anchor on top of
that set, though it does alone) is refused as a conflict naming both.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from . import _anchor, _layout
from ._linemap import Compiled, FromCacheError, compile_patched
from ._model import AnchoredHunk, Hunk, HunkSet, Origin, TransformHunk
from ._paths import resolve as resolve_paths
from ._refusal import Reason, Refusal
from ._scopes import Scope, ScopeIndex
from ._state import Context, ModuleSource, Placement, SourceReader, State
from ._transform import locate_transform


@dataclass
class HunkResult:
    """What happened to one hunk: `applies` (with `line`/`scope`) or refused."""

    hunk: Hunk
    line: int | None = None  # 1-based line in the file where the anchor starts
    scope: str | None = None  # qualified name of the function or class it lands in
    moved: int | None = None
    refusal: Refusal | None = None
    reformatted: bool = False  # applies only by structure: upstream re-laid the anchor's code out

    @property
    def status(self) -> str:
        if self.refusal is not None:
            return "refused"
        if self.reformatted:
            return "reformatted"
        return "moved" if self.moved else "applies"

    @property
    def located_target(self) -> str:
        """The target as located: a diff hunk names only its file, so add the function it landed in."""
        hunk = self.hunk
        if getattr(hunk, "from_diff", False) and hunk.target.qualname is None and self.scope:
            return f"{hunk.target.module}:{self.scope}"
        return str(hunk.target)


@dataclass
class SetResult:
    """One set's verdict: each hunk's result and the refusals that keep the set out."""

    hunk_set: HunkSet
    hunks: list[HunkResult] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # Files of a diff set left out on purpose by its `skip:` patterns (_paths.Skipped).
    skipped: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def located_targets(self) -> tuple[str, ...]:
        """Each distinct target once, in file order, diff hunks named by the function they landed in."""
        if not self.hunks:
            return self.hunk_set.targets
        return tuple(dict.fromkeys(h.located_target for h in self.hunks))


@dataclass
class PatchedModule:
    """A module as the accepted sets leave it, compiled with disk line numbers kept.

    From the on-disk cache (_cache.py, `from_cache`) only what the import hook runs is there: no
    patched text, original index, tree or units; reading `text` or `compiled.tree` then raises
    FromCacheError instead of handing out None (Runtime._full plans such a module again).
    """

    source: ModuleSource
    patched_text: str | None  # None: from the code cache
    sets: tuple[str, ...]
    compiled: Compiled
    original_index: ScopeIndex | None  # None: from the code cache, or a module a set creates
    created: bool = False  # a new module: no file on disk; the import hook serves it (issue 6)

    @classmethod
    def cached(cls, source: ModuleSource, sets: tuple[str, ...], compiled: Compiled) -> PatchedModule:
        """A module read from the code cache: compiled code (no tree, no units) and nothing else."""
        return cls(source, None, sets, compiled, None)

    @property
    def from_cache(self) -> bool:
        return self.patched_text is None

    @property
    def text(self) -> str:
        if self.patched_text is None:
            raise FromCacheError(f"{self.source.module} comes from the code cache, which keeps no text: plan it again")
        return self.patched_text


@dataclass
class Plan:
    """The verdict on all enabled sets, and the patched text of every module they change."""

    results: list[SetResult]
    modules: dict[str, PatchedModule]
    vllm_version: str | None

    @property
    def accepted(self) -> list[HunkSet]:
        return [r.hunk_set for r in self.results if r.ok]

    @property
    def refusals(self) -> list[Refusal]:
        return [f for r in self.results for f in r.refusals]


def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def _scope_label(scopes: list[Scope]) -> str:
    return f"{scopes[0].describe()} (line{'s' if len(scopes) == 1 else 's of each'} " + ", ".join(
        f"{s.start + 1}-{s.end}" for s in scopes
    ) + ")"


def _locate_anchored(ctx: Context, hunk: AnchoredHunk, state: State, expect: int | None = None) -> Placement | Refusal:
    """expect: for a diff hunk, the 0-based line its header names, shifted as patch shifts it (None: its own)."""
    if hunk.creates:
        return _locate_creation(ctx, hunk, state)
    try:
        index = state.index()
    except SyntaxError as exc:
        return ctx.refuse(Reason.INVALID_PYTHON, hunk, f"the module source does not parse: {exc}", state.source)
    if hunk.from_diff:
        return _locate_diff(ctx, hunk, state, index, expect)
    scopes = index.find(hunk.target.qualname)
    if not scopes:
        return ctx.refuse(
            Reason.TARGET_NOT_FOUND,
            hunk,
            f"{hunk.target.qualname} is not defined in {hunk.target.module}{index.similar(hunk.target.qualname)}",
            state.source,
        )
    if not hunk.anchor:
        return _append_to_scope(ctx, hunk, state, scopes[-1])
    found = sorted({i for s in scopes for i in _anchor.occurrences(state.lines, hunk.anchor, s.start, s.end)})
    if not found:  # text first, structure second
        return _locate_by_layout(ctx, hunk, state, scopes)
    if len(found) == 1:
        scope, moved = _scope_and_moved(hunk, scopes, found[0])
        return Placement(hunk, found[0], found[0] + len(hunk.anchor), _ops(hunk), scope, moved)
    return ctx.refuse(
        Reason.ANCHOR_AMBIGUOUS,
        hunk,
        f"the anchor ({_lines(len(hunk.anchor))}) occurs {len(found)} times in {_scope_label(scopes)}, at lines "
        + ", ".join(str(_disk_line(state, i)) for i in found)
        + "; add context lines until they occur once",
        state.source,
        expected=hunk.anchor,
    )


def _ops(hunk: AnchoredHunk) -> list[tuple[str, str]]:
    """A hunk's lines as the (op, text) pairs a placement replaces its anchor with."""
    return [(l.op, l.text) for l in hunk.lines]


def _scope_and_moved(hunk: AnchoredHunk, scopes: list[Scope], first: int) -> tuple[Scope, int | None]:
    """The scope holding line `first` (0-based), and the lines the anchor moved from the hunk's
    offset in it (None: the hunk gives no offset)."""
    scope = next(s for s in scopes if s.start <= first < s.end)
    return scope, None if hunk.hint_offset is None else (first - scope.start) - hunk.hint_offset


def _append_to_scope(ctx: Context, hunk: AnchoredHunk, state: State, scope: Scope) -> Placement | Refusal:
    """A hunk of '+' lines only: added at the end of its class or module; a function takes no such hunk."""
    if scope.kind == "function":
        return ctx.refuse(
            Reason.ANCHOR_NOT_FOUND,
            hunk,
            "this hunk has only '+' lines; only a class or module target takes lines with no anchor "
            "(they are added at its end)",
            state.source,
        )
    lines = state.lines
    at = scope.end if scope.kind == "class" else len(lines) - (1 if lines and lines[-1] == "" else 0)
    return Placement(hunk, at, at, _ops(hunk), scope)


def _locate_by_layout(ctx: Context, hunk: AnchoredHunk, state: State, scopes: list[Scope]) -> Placement | Refusal:
    """The anchor's text is not in its scopes: its code laid out anew, once (issue 10), or a refusal."""
    laid = _layout.search(state.lines, _ops(hunk), [(s.start, s.end) for s in scopes])
    if len(laid.places) == 1 and laid.places[0].match is not None:
        m = laid.places[0].match
        scope, moved = _scope_and_moved(hunk, scopes, laid.places[0].first)
        return Placement(hunk, m.start, m.end, list(m.new), scope, moved, reformatted=True)
    if len(laid.places) > 1:
        return _layout_ambiguous(ctx, hunk, state, laid.places, f"in {_scope_label(scopes)}")
    near = scopes[0].start + hunk.hint_offset if hunk.hint_offset is not None else None
    lo, hi = min(s.start for s in scopes), max(s.end for s in scopes)
    refusal = _not_found(ctx, hunk, state, lo, hi, f"in {_scope_label(scopes)}", near)
    return _layout_note(refusal, state, laid.places)


def _changed_span(hunk: AnchoredHunk, start: int) -> tuple[int, int]:
    """The 0-based old-text span [a, b) of the lines a hunk removes (empty: where it inserts)."""
    pos = start
    first = last = None
    for line in hunk.lines:
        if line.op == "-":
            first = pos if first is None else first
            last = pos + 1
            pos += 1
        elif line.op == "+":
            if first is None:
                first = last = pos
        else:
            pos += 1
    assert first is not None and last is not None
    return first, last


def _locate_creation(ctx: Context, hunk: AnchoredHunk, state: State) -> Placement | Refusal:
    """A hunk that creates its module: only '+' lines, on the empty text of a module that is not there."""
    if not state.created or state.lines != [""]:
        return ctx.refuse(
            Reason.MODULE_EXISTS, hunk, f"this hunk creates {hunk.target.module}, which already exists "
            + ("(another set or an earlier commit made it)" if state.created else f"here ({state.source.path})"),
            state.source, other_sets=tuple(s for s in state.sets if s != ctx.hunk_set.name),
        )
    anchor = hunk.anchor  # empty, or the empty last element of a file written without a final newline
    return Placement(hunk, 0, len(anchor), _ops(hunk), state.index().module)


def _author_position(state: State, i: int, set_name: str) -> int:
    """Line i counted as the set's author saw it: lines other sets added are not in their file."""
    return i - sum(1 for owner in state.owners[:i] if owner is not None and owner != set_name)


def _locate_diff(
    ctx: Context, hunk: AnchoredHunk, state: State, index: ScopeIndex, expect: int | None = None
) -> Placement | Refusal:
    """A diff hunk: find its anchor anywhere in the module, then the scope its changed lines are in."""
    lines = state.lines
    if not hunk.anchor:
        return _diff_without_anchor(ctx, hunk, state, index)
    found, laid = _diff_occurrences(hunk, lines)
    if not found:
        where = "in the module" + (" at its end" if hunk.at_end else "")
        return _not_found(ctx, hunk, state, 0, len(lines), where, near=(hunk.hint_line or 1) - 1)
    patch_pick, wanted = None, None
    if laid is None and len(found) > 1 and hunk.hint_line is not None:
        found, patch_pick, wanted = _as_patch_would(ctx, hunk, state, found, expect)
    candidates = [(i, index.innermost(*(laid[i].changed if laid is not None else _changed_span(hunk, i)))) for i in found]
    if len(candidates) > 1 and hunk.hint_scope:
        narrowed = _by_function_name(ctx, hunk, state, index, candidates, patch_pick, wanted)
        if isinstance(narrowed, Refusal):
            return narrowed
        candidates = narrowed
    if len(candidates) > 1:
        return _diff_ambiguous(ctx, hunk, state, candidates, laid)
    start, scope = candidates[0]
    if laid is None:
        return Placement(hunk, start, start + len(hunk.anchor), _ops(hunk), scope, _diff_moved(ctx, hunk, state, start))
    place = laid[start]
    if place.match is None:
        refusal = _not_found(ctx, hunk, state, 0, len(lines), "in the module", near=(hunk.hint_line or 1) - 1)
        return _layout_note(refusal, state, [place])
    moved = _diff_moved(ctx, hunk, state, place.first)
    return Placement(hunk, place.match.start, place.match.end, list(place.match.new), scope, moved, reformatted=True)


def _diff_occurrences(hunk: AnchoredHunk, lines: list[str]) -> tuple[list[int], list[_layout.Place] | None]:
    """Where a diff hunk's anchor text is (first lines), else where its code is laid out anew
    (issue 10): then the second item holds those places and the first indexes them."""
    found = _anchor.occurrences(lines, hunk.anchor, 0, len(lines))
    if hunk.at_end:  # written with `\ No newline at end of file`: the anchor is the file's end
        return [i for i in found if i + len(hunk.anchor) == len(lines)], None
    if found:
        return found, None
    laid = _layout.search(lines, _ops(hunk), [(0, len(lines))]).places
    return list(range(len(laid))), laid


def _diff_without_anchor(ctx: Context, hunk: AnchoredHunk, state: State, index: ScopeIndex) -> Placement | Refusal:
    """A diff hunk with no context nor removed lines: only git's diff of an empty file has a place."""
    lines = state.lines
    # `@@ -0,0 +1,n @@` on a file that exists: git's diff of an empty file (an empty `__init__.py`
    # that a series fills, omni-infer at vLLM 0.8.3). Its anchor is the whole file: it must be empty.
    if hunk.hint_line == 1 and not hunk.creates:
        if lines == [""]:
            return Placement(hunk, 0, 0, _ops(hunk), index.module)
        return ctx.refuse(Reason.ANCHOR_NOT_FOUND, hunk, "this diff hunk (@@ -0,0) fills an empty file, and "
                          f"{hunk.target.module} is not empty here ({_lines(len(lines) - 1)})", state.source)
    return ctx.refuse(Reason.ANCHOR_NOT_FOUND, hunk, "this diff hunk has no context or removed lines to anchor it "
                      "(a zero-context diff, diff -U0?): make it with context (git diff, diff -u)", state.source)


def _as_patch_would(
    ctx: Context, hunk: AnchoredHunk, state: State, found: list[int], expect: int | None
) -> tuple[list[int], int | None, int]:
    """Among several occurrences: the one at the header's line (shifted as patch shifts it by the
    hunks before it) or tied to a file end, else all of them with the one GNU `patch -F0` would take
    (the nearest; later first at equal distance). Returns (found, patch's pick or None, wanted line)."""
    assert hunk.hint_line is not None
    wanted = hunk.hint_line - 1 if expect is None else expect
    position = {i: _author_position(state, i, ctx.hunk_set.name) for i in found}
    exact = [i for i in found if position[i] == wanted]
    if len(exact) == 1:
        return exact, None, wanted
    tied = _tied_to_an_end(hunk, found, state.lines)
    if tied is not None:
        return [tied], None, wanted
    return found, min(found, key=lambda i: (abs(position[i] - wanted), position[i] < wanted)), wanted


def _by_function_name(
    ctx: Context, hunk: AnchoredHunk, state: State, index: ScopeIndex, candidates: list[tuple[int, Scope]],
    patch_pick: int | None, wanted: int | None,
) -> list[tuple[int, Scope]] | Refusal:
    """The candidates in the function git's `@@ ... @@ name` names, when that is one; never a
    different place than patch would take at the release the diff was made against (issue 6)."""
    assert hunk.hint_scope is not None
    named = hunk.hint_scope.strip()
    narrowed = [(i, s) for i, s in candidates if _scope_chain_mentions(index, s, state.lines, named)]
    if len(narrowed) != 1:
        return candidates
    if patch_pick is not None and narrowed[0][0] != patch_pick:
        assert wanted is not None
        return ctx.refuse(
            Reason.ANCHOR_AMBIGUOUS, hunk,
            f"the anchor ({_lines(len(hunk.anchor))}) occurs {len(candidates)} times; git's function name "
            f"{named!r} points at line {narrowed[0][0] + 1} ({narrowed[0][1].describe()}), but the nearest "
            f"to the hunk's line {wanted + 1}, where patch would apply it, is line {patch_pick + 1}; "
            "make the diff with more context (diff -U5) so they occur once",
            state.source, expected=hunk.anchor,
        )
    return narrowed


def _diff_ambiguous(ctx: Context, hunk: AnchoredHunk, state: State, candidates: list[tuple[int, Scope]], laid) -> Refusal:
    if laid is not None:
        return _layout_ambiguous(ctx, hunk, state, [laid[i] for i, _ in candidates], "in the module")
    places = ", ".join(f"line {i + 1} ({s.describe()})" for i, s in candidates)
    return ctx.refuse(
        Reason.ANCHOR_AMBIGUOUS,
        hunk,
        f"the anchor ({_lines(len(hunk.anchor))}) occurs {len(candidates)} times: {places}; "
        "make the diff with more context (diff -U5) so they occur once",
        state.source,
        expected=hunk.anchor,
    )


def _diff_moved(ctx: Context, hunk: AnchoredHunk, state: State, start: int) -> int | None:
    """Lines between where the diff's header says the hunk was and where it lands (None: no header line)."""
    if hunk.hint_line is None:
        return None
    original_start = state.origin_of[start] if hunk.step == 0 else None
    if original_start is None:
        original_start = _author_position(state, start, ctx.hunk_set.name)
    return original_start - (hunk.hint_line - 1)


def _layout_ambiguous(ctx: Context, hunk: AnchoredHunk, state: State, places: list, where: str) -> Refusal:
    at = ", ".join(str((state.origin_of[p.first] if state.origin_of[p.first] is not None else p.first) + 1) for p in places)
    return ctx.refuse(
        Reason.ANCHOR_AMBIGUOUS,
        hunk,
        f"the anchor's text is not {where}, and its code (laid out anew) occurs {len(places)} times, at lines {at}; "
        "add context lines until they occur once",
        state.source,
        expected=hunk.anchor,
    )


def _layout_note(refusal: Refusal, state: State, places: list) -> Refusal:
    """A refusal for an anchor whose code is there, laid out anew, but the hunk cannot be written there."""
    if places and places[0].match is None:
        line = places[0].first
        at = (state.origin_of[line] if state.origin_of[line] is not None else line) + 1
        refusal.detail += f"; the same code, laid out anew, is at line {at}, but {places[0].why} (rebase the hunk onto this release)"
    return refusal


def _tied_to_an_end(hunk: AnchoredHunk, found: list[int], lines: list[str]) -> int | None:
    """The occurrence at the start or end of the file that GNU patch ties a diff hunk to, if one is.

    diff writes fewer context lines before a change at the top of a file, and fewer after it at the
    bottom; with no fuzz, patch then takes only the first (old start 1) or last lines of the file.
    """
    if hunk.at_end or not found:
        return None  # a `\ No newline` hunk is filtered to the end already
    ops = [line.op for line in hunk.lines]
    leading = next((k for k, op in enumerate(ops) if op != " "), len(ops))
    trailing = next((k for k, op in enumerate(reversed(ops)) if op != " "), len(ops))
    context = max(leading, trailing)
    if leading < context and (hunk.hint_line or 0) <= 1:
        at = [i for i in found if i == 0]
    elif trailing < context:
        end = len(lines) - (1 if lines and lines[-1] == "" else 0)
        at = [i for i in found if i + len(hunk.anchor) == end]
    else:
        return None
    return at[0] if len(at) == 1 else None


def _disk_line(state: State, i: int) -> int:
    """1-based line on disk of the current text's line `i` (an added line: its place in the current text)."""
    at = state.origin_of[i]
    return at + 1 if at is not None else i + 1


def _scope_chain_mentions(index: ScopeIndex, scope: Scope, lines: list[str], wanted: str) -> bool:
    """Whether the scope, or one around it, starts with the def/class line git printed after `@@`."""
    for s in index.scopes:
        if not isinstance(s.node, ast.Module) and s.start <= scope.start and scope.end <= s.end:
            header = lines[s.node.lineno - 1].strip()
            if header.startswith(wanted) or wanted.startswith(header):
                return True
    return False


def _not_found(ctx: Context, hunk: AnchoredHunk, state: State, lo: int, hi: int, where: str, near: int | None = None) -> Refusal:
    anchor = hunk.anchor
    miss = _anchor.closest(state.lines, anchor, lo, hi, near)
    extra: dict = {"expected": anchor}
    detail = f"the {_lines(len(anchor))} this hunk expects {'is' if len(anchor) == 1 else 'are'} not {where}"
    if miss is not None:
        original = state.origin_of[miss.start]
        extra.update(found=miss.found, found_line=(original if original is not None else miss.start) + 1)
        detail += f"; closest match at line {extra['found_line']}: {miss.summary}"
    else:
        detail += "; no code there resembles it"
    return ctx.refuse(Reason.ANCHOR_NOT_FOUND, hunk, detail, state.source, **extra)


def _locate(ctx: Context, hunk: Hunk, state: State, expect: int | None = None) -> Placement | Refusal:
    if isinstance(hunk, TransformHunk):
        return locate_transform(ctx, hunk, state)
    return _locate_anchored(ctx, hunk, state, expect)


def _apply(state: State, placements: list[Placement], set_name: str) -> State:
    """The state after replacing each placement's span (placements must not overlap)."""
    lines: list[str] = []
    owners: list[str | None] = []
    origin_of: list[int | None] = []
    relied: list[frozenset[str]] = []
    mine = frozenset((set_name,))
    old_blame = state.blame or [None] * len(state.lines)
    blame: list[tuple[str, Origin] | None] = []
    pending: list[tuple[str, Origin]] = []  # a removal not yet followed by a line to carry its blame
    pos = 0

    def keep(start: int, end: int) -> None:
        lines.extend(state.lines[start:end])
        owners.extend(state.owners[start:end])
        origin_of.extend(state.origin_of[start:end])
        relied.extend(state.relied[start:end])
        blame.extend(old_blame[start:end])
        if pending and end > start:
            blame[len(blame) - (end - start)] = pending.pop()

    for p in sorted(placements, key=lambda p: (p.start, p.end)):
        keep(pos, p.start)
        old = p.start
        anchored = not isinstance(p.hunk, TransformHunk)
        for (op, text), where in zip(p.new, _line_origins(p), strict=True):
            if op == " ":
                keep(old, old + 1)
                if anchored:
                    relied[-1] = relied[-1] | mine
                old += 1
            elif op == "-":
                old += 1
                if not pending:
                    pending.append((set_name, where))
            else:
                lines.append(text)
                owners.append(set_name)
                origin_of.append(None)
                relied.append(mine)
                blame.append((set_name, where))
                pending.clear()
        pos = p.end
    keep(pos, len(state.lines))
    sets = state.sets if set_name in state.sets else state.sets + (set_name,)  # a series applies step by step
    return State(state.source, lines, owners, origin_of, relied, sets, created=state.created, blame=blame)


def _line_origins(p: Placement) -> list[Origin]:
    """The hunk-file line behind each of a placement's (op, text) pairs (a transform: its def line)."""
    hunk_lines = getattr(p.hunk, "lines", None)
    if hunk_lines is not None and len(hunk_lines) == len(p.new) and all(l.op == op for l, (op, _) in zip(hunk_lines, p.new, strict=True)):
        return [l.origin for l in hunk_lines]
    return [p.hunk.origin] * len(p.new)


def _steps(hunks: Sequence[Hunk]) -> list[list[Hunk]]:
    """Hunks grouped by step, in order: each step is located on the text the earlier ones produced."""
    by_step: dict[int, list[Hunk]] = {}
    for hunk in hunks:
        by_step.setdefault(getattr(hunk, "step", 0), []).append(hunk)
    return [by_step[k] for k in sorted(by_step)]


class _Series:
    """Walks a set's steps over module states: locate each step's hunks, then apply them together."""

    def __init__(self, ctx: Context, states: dict[str, State], read: Callable[[str], State | None], created: dict[str, str]):
        self.ctx = ctx
        self.states = states
        self.read = read
        self.created = created
        self.failed: dict[str, Hunk] = {}  # module -> its first refused hunk: later steps there are not reached

    def state_for(self, hunk: Hunk) -> State | Refusal:
        module = hunk.target.module
        state = self.states.get(module) or self.read(module)
        if state is None and getattr(hunk, "creates", False):
            if module not in self.created:
                return self.ctx.refuse(Reason.MODULE_NOT_FOUND, hunk, f"cannot create {module}: its package "
                                       f"{module.rpartition('.')[0] or '(none: a top-level module)'} is not here")
            state = State.new_module(module, self.created[module])
        if state is None:
            return self.ctx.refuse(Reason.MODULE_NOT_FOUND, hunk, f"no Python source for module {module}")
        self.states.setdefault(module, state)
        return state

    def not_reached(self, hunk: Hunk) -> Refusal | None:
        earlier = self.failed.get(hunk.target.module)
        if earlier is None:
            return None
        where = f" ({earlier.commit.label()})" if earlier.commit is not None else ""
        return self.ctx.refuse(Reason.NOT_REACHED, hunk, f"the hunk at {earlier.origin}{where} on this module was refused, "
                               "and this one applies to the text it would have made")

    def locate_step(self, hunks: list[Hunk], on_placed: Callable[[Hunk, Placement, State], None],
                    on_refused: Callable[[Hunk, Refusal], None]) -> dict[str, list[Placement]]:
        by_module: dict[str, list[Placement]] = {}
        offsets: dict[int, int] = {}  # id(diff file section) -> how far patch would shift its next hunk
        for hunk in hunks:
            refusal = self.not_reached(hunk)
            state = refusal or self.state_for(hunk)
            if isinstance(state, Refusal):
                self.failed.setdefault(hunk.target.module, hunk)
                on_refused(hunk, state)
                continue
            section = getattr(hunk, "file", None)
            expect = None
            if section is not None and id(section) in offsets and hunk.hint_line is not None:
                expect = hunk.hint_line - 1 + offsets[id(section)]
            located = _locate(self.ctx, hunk, state, expect)
            if isinstance(located, Refusal):
                self.failed.setdefault(hunk.target.module, hunk)
                on_refused(hunk, located)
                continue
            if section is not None and hunk.hint_line is not None:
                offsets[id(section)] = _author_position(state, located.start, self.ctx.hunk_set.name) - (hunk.hint_line - 1)
            on_placed(hunk, located, state)
            by_module.setdefault(hunk.target.module, []).append(located)
        return by_module


def _try_set(
    ctx: Context, hunk_set: HunkSet, states: dict[str, State], read: Callable[[str], State | None],
    created: dict[str, str] | None = None,
) -> tuple[SetResult, dict[str, State]]:
    """Locate every hunk of one set on `states`, step by step, applying each step (or report why not)."""
    result = SetResult(hunk_set)
    walk = _Series(ctx, states, read, created or {})
    results: dict[int, HunkResult] = {}
    new_states: dict[str, State] = {}

    def placed(hunk: Hunk, located: Placement, state: State) -> None:
        origin = state.origin_of[located.start] if located.start < len(state.origin_of) else None
        # The original file's line; for an anchor starting on a line an earlier commit added, its line
        # in the text that commit left.
        line = (origin if origin is not None else _author_position(state, located.start, hunk_set.name)) + 1
        results[id(hunk)] = HunkResult(
            hunk, line=line, scope=located.scope.qualname or None, moved=located.moved, reformatted=located.reformatted
        )

    def refused(hunk: Hunk, refusal: Refusal) -> None:
        results[id(hunk)] = HunkResult(hunk, refusal=refusal)
        result.refusals.append(refusal)

    for step in _steps(hunk_set.hunks):
        for module, placements in walk.locate_step(step, placed, refused).items():
            state = walk.states[module]
            new_state = _apply_step(ctx, module, state, placements, refused, result, results)
            if not isinstance(new_state, State):  # the hunk whose refusal keeps later steps off this module
                walk.failed.setdefault(module, new_state)
                continue
            walk.states[module] = new_states[module] = new_state
    result.hunks = [results[id(h)] for h in hunk_set.hunks if id(h) in results]
    if result.refusals:
        return result, {}
    return result, new_states


def _apply_step(
    ctx: Context, module: str, state: State, placements: list[Placement], refused: Callable[[Hunk, Refusal], None],
    result: SetResult, results: dict[int, HunkResult],
) -> State | Hunk:
    """One step's placements on one module applied; else each refusal recorded and the hunk to blame
    for the module: hunks that overlap (refused one by one), or a patched text that does not parse."""
    overlaps = _overlaps(ctx, state, placements)
    for hunk, refusal in overlaps:
        refused(hunk, refusal)
    if overlaps:
        return min(placements, key=lambda p: (p.start, p.end)).hunk
    new_state = _apply(state, placements, ctx.hunk_set.name)
    broken = _unparsable(ctx, module, state, new_state, placements[0].hunk)
    if broken is None:
        return new_state
    result.refusals.append(broken)  # once on the set; every hunk of the step shows it
    for p in placements:
        results[id(p.hunk)].refusal = results[id(p.hunk)].refusal or broken
    return placements[0].hunk


def _overlaps(ctx: Context, state: State, placements: list[Placement]) -> list[tuple[Hunk, Refusal]]:
    """Each placement that starts inside the one before it (two insertions at one place are fine:
    they go in file order), refused with the hunk it overlaps."""
    ordered = sorted(placements, key=lambda p: (p.start, p.end))
    return [
        (b.hunk, ctx.refuse(Reason.OVERLAP, b.hunk, f"it changes lines that the hunk at {a.hunk.origin} changes too; "
                            "merge them into one hunk", state.source))
        for a, b in zip(ordered, ordered[1:], strict=False) if b.start < a.end
    ]


def _unparsable(ctx: Context, module: str, state: State, new_state: State, hunk: Hunk) -> Refusal | None:
    """A refusal when the patched text does not parse, quoting the patched line at fault."""
    try:
        new_state.index()
    except SyntaxError as exc:
        at = new_state.lines[exc.lineno - 1] if exc.lineno and exc.lineno <= len(new_state.lines) else ""
        return ctx.refuse(
            Reason.INVALID_PYTHON,
            hunk,
            f"the patched {module} does not parse: {exc.msg} at patched line {exc.lineno}: {at.strip()!r}",
            state.source,
        )
    return None


def _conflicts(ctx: Context, hunk_set: HunkSet, states: dict[str, State], read: Callable[[str], State | None],
               created: dict[str, str] | None = None) -> list[Refusal]:
    """Hunks of `hunk_set` whose anchors, placed on `states` step by step, cover lines other sets added."""
    refusals: list[Refusal] = []
    walk = _Series(ctx, dict(states), read, created or {})

    def refused(hunk: Hunk, located: Refusal) -> None:
        state = walk.states.get(hunk.target.module)
        if state is None or not state.sets or located.reason == Reason.NOT_REACHED:
            return
        others = tuple(s for s in state.sets if s != hunk_set.name)
        refusals.append(
            ctx.refuse(
                Reason.CONFLICT,
                hunk,
                f"it applies alone, but not on top of {_names(others)} ({located.title}: {located.detail})",
                state.source,
                other_sets=others,
            )
        )

    def placed(hunk: Hunk, located: Placement, state: State) -> None:
        changed_by = {o for i in _touched(located) if (o := state.owners[i]) is not None} - {hunk_set.name}
        relied_on_by = _breaks(located, state) - {hunk_set.name}
        if changed_by or relied_on_by:
            at = state.origin_of[located.start] if located.start < len(state.origin_of) else None
            why = []
            if changed_by:
                why.append(f"its anchor covers lines that {_names(sorted(changed_by))} changed")
            if relied_on_by:
                why.append(f"it changes lines that the anchor of {_names(sorted(relied_on_by))} holds")
            refusals.append(
                ctx.refuse(
                    Reason.CONFLICT,
                    hunk,
                    " and ".join(why) + f" (around line {(at if at is not None else located.start) + 1})",
                    state.source,
                    other_sets=tuple(sorted(changed_by | relied_on_by)),
                )
            )

    for step in _steps(hunk_set.hunks):
        by_module = walk.locate_step(step, placed, refused)
        for module, placements in by_module.items():
            walk.states[module] = _apply(walk.states[module], placements, hunk_set.name)
    return refusals


def _touched(p: Placement) -> list[int]:
    """Old lines a placement relies on: a hunk's whole anchor; a transform's changed lines and their neighbours."""
    if not isinstance(p.hunk, TransformHunk):
        return list(range(p.start, p.end))
    touched, old = [], p.start
    for op, _ in p.new:
        if op == " ":
            old += 1
        elif op == "-":
            touched.append(old)
            old += 1
        else:
            touched += [i for i in (old - 1, old) if p.start <= i < p.end]
    return touched


def _breaks(p: Placement, state: State) -> set[str]:
    """Sets whose anchors hold a line this placement removes, or two lines it inserts between."""
    broken: set[str] = set()
    old = p.start
    for op, _ in p.new:
        if op == " ":
            old += 1
        elif op == "-":
            broken |= state.relied[old]
            old += 1
        elif 0 < old < len(state.relied):
            broken |= state.relied[old - 1] & state.relied[old]
    return broken


def _names(sets: Sequence[str]) -> str:
    return ", ".join(f"set {s!r}" for s in sets)


def check_version(hunk_set: HunkSet, version: str | None, require_version: bool = True) -> str | None:
    """Why `version` is outside the set's `vllm:` range, or None when it is inside (or no range).

    require_version=False lets an unknown version pass (a source tree with no version recorded).
    """
    spec = hunk_set.vllm_range
    if spec is None or (version is None and not require_version):
        return None
    if version is None:
        return f"the set needs vllm {spec}, and the vLLM version could not be read"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"the set needs vllm {spec}, and vLLM reports the unreadable version {version!r}"
    if spec.contains(parsed, prereleases=True) or spec.contains(Version(parsed.public), prereleases=True):
        return None
    return f"the set needs vllm {spec}; this is {version}"


def plan(
    sets: Sequence[HunkSet],
    read_source: SourceReader,
    vllm_version: str | None,
    *,
    compile_modules: bool = True,
    require_version: bool = True,
) -> Plan:
    """Check every set against the original sources, stack the ones that apply, compile the results."""
    originals: dict[str, State | None] = {}

    def read(module: str) -> State | None:
        if module not in originals:
            source = read_source(module)
            originals[module] = None if source is None else State.initial(source)
        return originals[module]

    results: list[SetResult] = []
    accepted: dict[str, State] = {}
    for given in sets:
        # A diff names files by path: which module each is depends on the tree (issue 6).
        resolution = resolve_paths(given, read_source, vllm_version)
        ctx = Context(resolution.hunk_set, vllm_version)
        alone, alone_states = _try_set(ctx, resolution.hunk_set, {}, read, resolution.created)
        alone.skipped = resolution.skipped
        alone.refusals[:0] = resolution.refusals
        why = check_version(resolution.hunk_set, vllm_version, require_version)
        if why is not None:
            alone.refusals.insert(0, ctx.refuse(Reason.VERSION, None, why))
        results.append(alone)
        if alone.ok:
            _stack(ctx, alone, alone_states, accepted, read, resolution.created)
    if not compile_modules:
        return Plan(results, {}, vllm_version)
    modules: dict[str, PatchedModule] = {}
    for module, state in accepted.items():
        patched = _compile(state, originals[module])
        if isinstance(patched, SyntaxError):
            owner = _refuse_uncompilable(module, state, patched, results, vllm_version)
            # Never apply half a set: plan again without the set that broke it.
            return _replan(sets, owner, results, read_source, vllm_version, require_version)
        modules[module] = patched
    return Plan(results, modules, vllm_version)


def _stack(
    ctx: Context, alone: SetResult, alone_states: dict[str, State], accepted: dict[str, State],
    read: Callable[[str], State | None], created: dict[str, str],
) -> None:
    """A set that applies alone, put on top of the sets accepted before it (`accepted` grows), or
    refused where it conflicts with them (its hunks then carry the conflict)."""
    if not any(m in accepted for m in alone_states):
        accepted.update(alone_states)
        return
    hunk_set = alone.hunk_set
    stacked_on = {m: s for m in hunk_set.modules if (s := accepted.get(m) or read(m)) is not None}
    conflicts = _conflicts(ctx, hunk_set, stacked_on, read, created)
    if conflicts:
        alone.refusals.extend(conflicts)
        for refusal in conflicts:
            hunk = next(h for h in hunk_set.hunks if h.origin == refusal.origin)
            for hr in alone.hunks:
                if hr.hunk is hunk:
                    hr.refusal = refusal
        return
    stacked, stacked_states = _try_set(ctx, hunk_set, stacked_on, read, created)
    if not stacked.ok:  # cannot happen after _conflicts passed, but never apply half a set
        alone.refusals.extend(stacked.refusals)
        return
    accepted.update(stacked_states)


def _refuse_uncompilable(module: str, state: State, error: SyntaxError, results: list[SetResult], version: str | None) -> str:
    """Refuse the last set that changed `module` (its patched text does not compile); its name."""
    owner = state.sets[-1]
    result = next(r for r in results if r.hunk_set.name == owner)
    ctx = Context(result.hunk_set, version)
    hunk = next(h for h in result.hunk_set.hunks if h.target.module == module)
    result.refusals.append(ctx.refuse(Reason.INVALID_PYTHON, hunk, f"the patched {module} does not compile: {error}", state.source))
    return owner


def _replan(
    sets: Sequence[HunkSet], dropped: str, results: list[SetResult], read_source: SourceReader, version: str | None,
    require_version: bool,
) -> Plan:
    """Plan again without `dropped`, keeping its refusal in the results."""
    again = plan([s for s in sets if s.name != dropped], read_source, version, require_version=require_version)
    keep = next(r for r in results if r.hunk_set.name == dropped)
    merged = [keep if r.hunk_set.name == dropped else next(a for a in again.results if a.hunk_set.name == r.hunk_set.name) for r in results]
    return Plan(merged, again.modules, version)


def _compile(state: State, original: State | None) -> PatchedModule | SyntaxError:
    text = "\n".join(state.lines)
    note = "vllm-surgeon: " + ", ".join(state.sets)
    tree = state.index().tree
    state._index = None  # compile_patched renumbers the tree's lines: never reuse it
    if state.created:  # no file on disk: its own text is what tracebacks and inspect show
        display = text if text.endswith("\n") else text + "\n"
        try:
            code = compile(tree, state.source.path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            return exc
        return PatchedModule(state.source, text, state.sets, Compiled(display, code, tree, []), None, created=True)
    assert original is not None  # a module on disk was read before any set changed it
    try:
        compiled = compile_patched(
            original.lines, state.lines, tree, state.origin_of, state.source.path, note,
            original_tree=original.index().tree, blame=state.blame,
        )
    except SyntaxError as exc:
        return exc
    return PatchedModule(state.source, text, state.sets, compiled, original.index())
