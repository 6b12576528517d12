"""Read `.py` hunk sets: LibCST transforms declared with `@transform(target, anchor=...)`.

    import libcst as cst
    from vllm_surgeon import transform

    VLLM = ">=0.30,<0.40"
    DESCRIPTION = "Log every preemption"

    @transform("vllm.v1.core.sched.scheduler:Scheduler._preempt_request",
               anchor="request.status = RequestStatus.PREEMPTED")
    def log_preemption(node: cst.FunctionDef) -> cst.FunctionDef:
        ...

A transform is a function taking the target's `libcst` node and returning the new node, or a
`libcst.CSTTransformer` subclass (the target node is visited with a fresh instance). The anchor
(a statement, several statements, or an expression, as source text) must occur in the target,
compared structurally (formatting and comments do not matter).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._model import AnchoredHunk, HunkFileError, HunkSet, Origin, Target, TransformHunk, check_fields

_MARK = "__vllm_surgeon_transform__"
_GLOBALS = {"DESCRIPTION": "description", "WHY": "why", "UPSTREAM": "upstream", "VLLM": "vllm", "WRITTEN_AGAINST": "written-against"}
T = TypeVar("T")


def transform(target: str, *, anchor: str | Sequence[str]) -> Callable[[T], T]:
    """Declare a LibCST transform of `target` (`module:Qualified.name`) that expects `anchor` there."""
    anchors = (anchor,) if isinstance(anchor, str) else tuple(anchor)
    if not anchors or not all(isinstance(a, str) and a.strip() for a in anchors):
        raise ValueError(f"@transform({target!r}): anchor must be non-empty source text (or a list of them)")

    def mark(obj: T) -> T:
        setattr(obj, _MARK, (target, anchors))
        return obj

    return mark


def _definition_line(obj: Any, path: str) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return getattr(getattr(obj, "__code__", None), "co_firstlineno", 1)


def parse_py_file(path: str, name: str) -> HunkSet:
    """Execute the file as a private module and collect its transforms, in definition order."""
    module_name = f"_vllm_surgeon_sets.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HunkFileError(Origin(path, 1), "cannot load this file as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise HunkFileError(Origin(path, exc.lineno or 1), f"syntax error: {exc.msg}") from None
    except Exception as exc:  # the user's code failed: point at its line in this file
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        line = frames[-1].lineno if frames else 1
        raise HunkFileError(Origin(path, line or 1), f"{type(exc).__name__} while loading: {exc}") from None
    finally:
        sys.modules.pop(module_name, None)

    fields: dict[str, str] = {}
    origins: dict[str, Origin] = {}
    for attr, key in _GLOBALS.items():
        value = getattr(module, attr, None)
        if value is not None:
            if not isinstance(value, str):
                raise HunkFileError(Origin(path, 1), f"{attr} must be a string, not {type(value).__name__}")
            fields[key] = value
            origins[key] = Origin(path, 1)
    hunks: list[TransformHunk | AnchoredHunk] = []
    for attr, obj in vars(module).items():
        mark = getattr(obj, _MARK, None) if not isinstance(obj, type(sys)) else None
        if mark is None:
            continue
        target_spec, anchors = mark
        origin = Origin(path, _definition_line(obj, path))
        target = Target.parse(target_spec, origin)
        if target.qualname is None:
            raise HunkFileError(origin, f"@transform target {target_spec!r} must name a function or class (module:Qualified.name)")
        hunks.append(TransformHunk(origin=origin, target=target, function=obj, anchors=anchors, name=attr))
    if not hunks:
        raise HunkFileError(Origin(path, 1), "no transforms: decorate a function or CSTTransformer with @vllm_surgeon.transform(...)")
    hunks.sort(key=lambda h: h.origin.line)
    check_fields(fields, origins)
    return HunkSet(name=name, path=path, kind="py", hunks=tuple(hunks), fields=fields, field_origins=origins)
