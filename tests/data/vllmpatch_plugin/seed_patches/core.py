"""The patch base of vLLM's blog post on plugins, written small: `class P(VLLMPatch[Target])` names the
class P patches, and `P.apply()` sets each public method P defines on it (the copy replaces vLLM's)."""

from __future__ import annotations

from typing import ClassVar


class VLLMPatch:
    _target: ClassVar[type | None] = None

    def __class_getitem__(cls, target: type) -> type:
        """`VLLMPatch[Scheduler]`: a base class that remembers its target."""
        return type(f"{cls.__name__}[{target.__name__}]", (cls,), {"_target": target})

    @classmethod
    def apply(cls) -> list[str]:
        """Set every public method this patch class defines on its target; their names."""
        if cls._target is None:
            raise TypeError(f"{cls.__name__} names no target: derive it from VLLMPatch[Target]")
        names = [name for name, value in vars(cls).items() if not name.startswith("_") and callable(value)]
        for name in names:
            setattr(cls._target, name, vars(cls)[name])
        return names
