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

import ast
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from typing import TypeVar

from vllm_surgeon.core.model import AnchoredHunk, HunkFileError, HunkSet, Origin, Target, TransformHunk, check_fields

_MARK = "__vllm_surgeon_transform__"
_GLOBALS = {"DESCRIPTION": "description", "WHY": "why", "UPSTREAM": "upstream", "VLLM": "vllm", "WRITTEN_AGAINST": "written-against"}
T = TypeVar("T")


def transform(target: str, *, anchor: str | Sequence[str]) -> Callable[[T], T]:
    """Declare a LibCST transform of `target` (`module:Qualified.name`) that expects `anchor` there."""
    if not isinstance(target, str):
        raise TypeError(f"@transform target must be a string like 'module:Qualified.name', not {type(target).__name__}")
    if isinstance(anchor, str):
        anchors: tuple = (anchor,)
    elif isinstance(anchor, (list, tuple)):
        anchors = tuple(anchor)
    else:
        raise TypeError(f"@transform({target!r}): anchor must be source text or a list of them, not {type(anchor).__name__}")
    if not anchors or not all(isinstance(a, str) and a.strip() for a in anchors):
        raise ValueError(f"@transform({target!r}): anchor must be non-empty source text (or a list of them)")

    def mark(obj: T) -> T:
        setattr(obj, _MARK, (target, anchors))
        return obj

    return mark


def _definition_lines(tree: ast.Module) -> dict[str, int]:
    """First line (decorators included) of each top-level def and class, from the bytes executed."""
    lines = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines[node.name] = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return lines


def _line_in(exc: BaseException, path: str) -> int:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return (frames[-1].lineno or 1) if frames else 1


def _mark_of(obj: object) -> object:
    """The @transform mark on `obj`, or None; objects whose attribute lookup misbehaves have none."""
    if isinstance(obj, types.ModuleType):
        return None
    try:
        return getattr(obj, _MARK, None)
    except Exception:
        return None


def parse_py_file(path: str, name: str, data: bytes | None = None) -> HunkSet:
    """Execute the set (the bytes given, else the file's) as a private module; collect its transforms.

    Nothing the set's code does escapes as anything but a HunkFileError naming its line, not even
    `sys.exit()` (issue 7 item 9); only KeyboardInterrupt goes through.
    """
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    code, tree = _compiled(data, path)
    module = _executed(code, path, name)
    defined = _definition_lines(tree)
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
    for attr, obj in list(vars(module).items()):
        mark = _mark_of(obj)
        if mark is not None:
            hunks.append(_transform_hunk(attr, obj, mark, Origin(path, defined.get(attr, 1))))
    if not hunks:
        raise HunkFileError(Origin(path, 1), "no transforms: decorate a function or CSTTransformer with @vllm_surgeon.transform(...)")
    hunks.sort(key=lambda h: h.origin.line)
    check_fields(fields, origins)
    return HunkSet(name=name, path=path, kind="py", hunks=tuple(hunks), fields=fields, field_origins=origins)


def _compiled(data: bytes, path: str) -> tuple[types.CodeType, ast.Module]:
    """The set's code and tree; a HunkFileError when it is no Python source."""
    try:
        tree = ast.parse(data, path)  # parsed once: the code is compiled from the tree
        return compile(tree, path, "exec", dont_inherit=True), tree
    except SyntaxError as exc:
        raise HunkFileError(Origin(path, exc.lineno or 1), f"syntax error: {exc.msg}") from None
    except (ValueError, UnicodeError) as exc:  # null bytes, a bad coding cookie or encoding
        raise HunkFileError(Origin(path, 1), f"not Python source: {exc}") from None
    except RecursionError:
        raise HunkFileError(Origin(path, 1), "nested too deeply to compile") from None


def _executed(code: types.CodeType, path: str, name: str) -> types.ModuleType:
    """The set run as a private module; whatever it raises (sys.exit() too) is a HunkFileError at its line."""
    module_name = f"_vllm_surgeon_sets.{name}"
    module = types.ModuleType(module_name)
    module.__file__ = path
    sys.modules[module_name] = module  # for dataclasses, pickling and the like inside the set
    try:
        exec(code, module.__dict__)
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        raise HunkFileError(
            Origin(path, _line_in(exc, path)),
            f"calls sys.exit({exc.code!r}) while loading; a set file may only define transforms",
        ) from None
    except BaseException as exc:  # the user's code failed: point at its line in this file
        raise HunkFileError(Origin(path, _line_in(exc, path)), f"{type(exc).__name__} while loading: {exc}") from None
    finally:
        sys.modules.pop(module_name, None)
    return module


def _transform_hunk(attr: str, obj: object, mark: object, origin: Origin) -> TransformHunk:
    """The transform `attr` of a set, from the mark @transform left on it; checked, as it may be forged."""
    if not (
        isinstance(mark, tuple) and len(mark) == 2 and isinstance(mark[0], str)
        and isinstance(mark[1], tuple) and mark[1] and all(isinstance(a, str) and a.strip() for a in mark[1])
    ):
        raise HunkFileError(
            origin, f"{attr} carries a malformed {_MARK} mark: declare transforms with @vllm_surgeon.transform(target, anchor=...)"
        )
    if not callable(obj):
        raise HunkFileError(origin, f"{attr} is marked as a transform but is not a function or CSTTransformer class")
    target_spec, anchors = mark
    target = Target.parse(target_spec, origin)
    if target.qualname is None:
        raise HunkFileError(origin, f"@transform target {target_spec!r} must name a function or class (module:Qualified.name)")
    return TransformHunk(origin=origin, target=target, function=obj, anchors=anchors, name=attr)
