"""Where one hunk lands in a module's current text: by its anchor's text, by structure, or why not."""

from __future__ import annotations

import ast

from vllm_surgeon.core.model import AnchoredHunk, Hunk, TransformHunk
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.core.scopes import Scope, ScopeIndex
from vllm_surgeon.engine.state import Context, Placement, State
from vllm_surgeon.engine.transform import locate_transform
from vllm_surgeon.matching import anchor as _anchor, layout as _layout


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


def author_position(state: State, i: int, set_name: str) -> int:
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
    candidates = [(i, index.innermost(*(laid[i].changed if laid is not None else _layout.changed_span(i, _ops(hunk))))) for i in found]
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
    position = {i: author_position(state, i, ctx.hunk_set.name) for i in found}
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
        original_start = author_position(state, start, ctx.hunk_set.name)
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


def locate(ctx: Context, hunk: Hunk, state: State, expect: int | None = None) -> Placement | Refusal:
    if isinstance(hunk, TransformHunk):
        return locate_transform(ctx, hunk, state)
    return _locate_anchored(ctx, hunk, state, expect)
