"""Two sets that touch the same lines: the later one is refused, naming both."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vllm_surgeon.core.model import Hunk, HunkSet, TransformHunk
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.engine.apply import Series, apply_placements, steps
from vllm_surgeon.engine.state import Context, Placement, State


def conflicts_on_top(ctx: Context, hunk_set: HunkSet, states: dict[str, State], read: Callable[[str], State | None],
               created: dict[str, str] | None = None) -> list[Refusal]:
    """Hunks of `hunk_set` whose anchors, placed on `states` step by step, cover lines other sets added."""
    refusals: list[Refusal] = []
    walk = Series(ctx, dict(states), read, created or {})

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

    for step in steps(hunk_set.hunks):
        by_module = walk.locate_step(step, placed, refused)
        for module, placements in by_module.items():
            walk.states[module] = apply_placements(walk.states[module], placements, hunk_set.name)
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
