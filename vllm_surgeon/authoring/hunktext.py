"""A `.hunk` file's text as its author wrote it: the header, then one block per section with the
comments above it, so `rebase` writes the user's file back with only the sections that changed
replaced (issue 15: a proposal dropped the rationale comment and every `#` line, and reordered hunks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vllm_surgeon.core.lines import split_lines
from vllm_surgeon.core.model import HunkSet

_HINT = re.compile(r"^(@@[^@]*@@\s*)\+\d+")
_TARGET = re.compile(r"^(@@\s*)[^\s@]+")


@dataclass
class Section:
    """One `@@` section as written: `lead` (the blank lines and the comment directly above it), its
    `@@` line and body, and `trail` (blank and comment lines after its last hunk line)."""

    line: int  # 1-based number of its `@@` line: the hunk's origin
    lead: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)

    def text(self) -> list[str]:
        return self.lead + self.body + self.trail

    def with_offset(self, offset: int) -> list[str]:
        """The section as written, its `@@ target @@ +N` position hint set to `offset` (a kept hunk that
        moved in the new release; a hint is machine-written, the rest of the line is the author's)."""
        at = _HINT.sub(lambda m: f"{m.group(1)}+{offset}", self.body[0], count=1)
        return self.lead + [at] + self.body[1:] + self.trail

    def with_target(self, target: str) -> list[str]:
        """The section as written, aimed at `target` (its code moved to another module, issue 14): the
        position hint dropped (it counted lines of the old module), the rest of the `@@` line kept."""
        at = _TARGET.sub(lambda m: f"{m.group(1)}{target}", _HINT.sub(lambda m: m.group(1).rstrip(), self.body[0], count=1), count=1)
        return self.lead + [at] + self.body[1:] + self.trail


@dataclass
class HunkText:
    """A `.hunk` file cut into its header lines and its sections, in file order (one per hunk)."""

    header: list[str]
    sections: list[Section]

    def header_with(self, hunk_set: HunkSet, key: str, value: str) -> list[str]:
        """The header as written, with field `key` set to `value` (its continuation lines replaced);
        a header without it gains the line after its last field."""
        header = list(self.header)
        origin = hunk_set.field_origins.get(key)
        if origin is not None and origin.line <= len(header):
            at = origin.line - 1
            end = at + 1
            while end < len(header) and header[end][:1] in (" ", "\t") and header[end].strip():
                end += 1
            header[at:end] = [f"{key}: {value}"]
            return header
        last = max((o.line for o in hunk_set.field_origins.values() if o.line <= len(header)), default=0)
        header.insert(last, f"{key}: {value}")
        return header


def _loose(line: str) -> bool:
    """A line the parser skips between sections: blank or a comment."""
    return not line.strip() or line.startswith("#")


def cut(text: str) -> HunkText:
    """The header and the sections of a `.hunk` file's text (its lines split as the parser splits them)."""
    lines = split_lines(text)
    starts = [i for i, line in enumerate(lines) if line.startswith("@@")]
    if not starts:
        return HunkText(lines, [])
    header_end = starts[0]
    sections: list[Section] = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        last = end
        while last > start + 1 and _loose(lines[last - 1]):
            last -= 1
        sections.append(Section(start + 1, body=lines[start:last], trail=lines[last:end]))
    # The comment directly above an `@@` line, and the blank lines above that comment, lead its section.
    for n, section in enumerate(sections):
        before = sections[n - 1].trail if n else None
        pool = before if before is not None else lines[:header_end]
        cut_at = len(pool)
        while cut_at > 0 and pool[cut_at - 1].startswith("#"):
            cut_at -= 1
        while cut_at > 0 and not pool[cut_at - 1].strip():
            cut_at -= 1
        if before is None:
            if cut_at == 0:  # a header of comments only: they stay the file's, not the first section's
                cut_at = len(pool)
            section.lead = pool[cut_at:]
            header_end = cut_at
        else:
            section.lead = before[cut_at:]
            sections[n - 1].trail = before[:cut_at]
    return HunkText(lines[:header_end], sections)
