"""A set's hunks located step by step and applied to module states, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vllm_surgeon.core.model import AnchoredHunk, Hunk, HunkSet, Origin, TransformHunk
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.engine.locate import author_position, locate
from vllm_surgeon.engine.results import HunkResult, SetResult
from vllm_surgeon.engine.state import Context, Placement, State


def apply_placements(state: State, placements: list[Placement], set_name: str) -> State:
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
    hunk_lines = p.hunk.lines if isinstance(p.hunk, AnchoredHunk) else None
    if hunk_lines is not None and len(hunk_lines) == len(p.new) and all(l.op == op for l, (op, _) in zip(hunk_lines, p.new, strict=True)):
        return [l.origin for l in hunk_lines]
    return [p.hunk.origin] * len(p.new)


def steps(hunks: Sequence[Hunk]) -> list[list[Hunk]]:
    """Hunks grouped by step, in order: each step is located on the text the earlier ones produced."""
    by_step: dict[int, list[Hunk]] = {}
    for hunk in hunks:
        by_step.setdefault(hunk.step, []).append(hunk)
    return [by_step[k] for k in sorted(by_step)]


class Series:
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
        if state is None and hunk.creates:
            if module not in self.created:
                return self.ctx.refuse(Reason.MODULE_NOT_FOUND, hunk, f"cannot create {module}: its package "
                                       f"{module.rpartition('.')[0] or '(none: a top-level module)'} is not here")
            state = State.new_module(module, self.created[module])
        if state is None:
            return self.ctx.refuse(Reason.MODULE_NOT_FOUND, hunk, f"no Python source for module {module}")
        self.states.setdefault(module, state)
        return state

    def not_reached(self, hunk: Hunk) -> Refusal | None:
        """A hunk of a later step on a module where an earlier step's hunk was refused: it applies to text
        that was never made. Hunks of one step (every hunk of a `.hunk` set) are each checked on their
        own (issue 15: a `.hunk` set's unrelated hunks read "after an earlier commit was refused")."""
        earlier = self.failed.get(hunk.target.module)
        if earlier is None or earlier.step >= hunk.step:
            return None
        where = f" ({earlier.commit.label()})" if earlier.commit is not None else " (an earlier section of this file)"
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
            section = hunk.file
            expect = None
            if section is not None and id(section) in offsets and hunk.hint_line is not None:
                expect = hunk.hint_line - 1 + offsets[id(section)]
            located = locate(self.ctx, hunk, state, expect)
            if isinstance(located, Refusal):
                self.failed.setdefault(hunk.target.module, hunk)
                on_refused(hunk, located)
                continue
            if section is not None and hunk.hint_line is not None:
                offsets[id(section)] = author_position(state, located.start, self.ctx.hunk_set.name) - (hunk.hint_line - 1)
            on_placed(hunk, located, state)
            by_module.setdefault(hunk.target.module, []).append(located)
        return by_module


def try_set(
    ctx: Context, hunk_set: HunkSet, states: dict[str, State], read: Callable[[str], State | None],
    created: dict[str, str] | None = None,
) -> tuple[SetResult, dict[str, State]]:
    """Locate every hunk of one set on `states`, step by step, applying each step (or report why not)."""
    result = SetResult(hunk_set)
    walk = Series(ctx, states, read, created or {})
    results: dict[int, HunkResult] = {}
    new_states: dict[str, State] = {}

    def placed(hunk: Hunk, located: Placement, state: State) -> None:
        origin = state.origin_of[located.start] if located.start < len(state.origin_of) else None
        # The original file's line; for an anchor starting on a line an earlier commit added, its line
        # in the text that commit left.
        line = (origin if origin is not None else author_position(state, located.start, hunk_set.name)) + 1
        results[id(hunk)] = HunkResult(
            hunk, line=line, scope=located.scope.qualname or None, moved=located.moved, reformatted=located.reformatted
        )

    def refused(hunk: Hunk, refusal: Refusal) -> None:
        results[id(hunk)] = HunkResult(hunk, refusal=refusal)
        result.refusals.append(refusal)

    for step in steps(hunk_set.hunks):
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
    new_state = apply_placements(state, placements, ctx.hunk_set.name)
    broken = _unparsable(ctx, module, state, new_state, [p.hunk for p in placements])
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


def _unparsable(ctx: Context, module: str, state: State, new_state: State, hunks: list[Hunk]) -> Refusal | None:
    """A refusal when the patched text does not parse, quoting the patched line at fault and the `+` line
    of whichever of the step's hunks wrote it (the first hunk's only, before: mutation testing, issue 13)."""
    try:
        new_state.index()
    except SyntaxError as exc:
        lineno = exc.lineno
        if lineno is None:  # a NUL byte: the parser names no line (issue 13); Python source cannot hold one
            lineno = next((i + 1 for i, text in enumerate(new_state.lines) if "\0" in text), None)
        at = new_state.lines[lineno - 1] if lineno and lineno <= len(new_state.lines) else ""
        writers = [(hunk, line.origin) for hunk in hunks
                   for line in getattr(hunk, "lines", ()) if line.op == "+" and at and line.text == at]
        hunk, written = writers[0] if writers else (hunks[0], None)
        return ctx.refuse(
            Reason.INVALID_PYTHON,
            hunk,
            f"the patched {module} does not parse: {exc.msg} at patched line {lineno}: {at.strip()!r}"
            + (f" (the + line at {written})" if written is not None else ""),
            state.source,
        )
    return None
