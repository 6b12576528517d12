"""README.md and docs/*.md read as tests/test_docs.py needs them: fenced blocks with their markers,
inline code spans, links, heading anchors, and shown output matched against real output.

The conventions (docs/development.md "How these docs are tested"):
- every fenced block starts at column 0 and has a language (LANGUAGES);
- `sh` blocks are scripts; `console` blocks are commands (`$ ` lines, continued while a quote is
  open or a line ends in a backslash) each followed by the output it shows;
- the line before a block may be `<!-- docs-test: not run: REASON -->` (the block cannot run here)
  or `<!-- docs-test: exit N -->` / `exit N|M` (the exit status of the block's last command).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = {"sh", "console", "python", "yaml", "json", "text"}
SHELL = {"sh", "console"}
_MARKER = re.compile(r"^<!-- docs-test: (?P<body>.*?) -->$")
_EXIT = re.compile(r"^exit (?P<codes>\d+(?:\|\d+)*)(?::.*)?$")


def page_name(page: Path) -> str:
    return str(page.relative_to(REPO))


@dataclass
class Command:
    """One `$ ` command of a console block and the output lines the page shows for it."""

    text: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    marker: str | None  # the docs-test comment's body, if any

    @property
    def id(self) -> str:
        return f"{page_name(self.page)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason this block cannot run here, or None when it runs."""
        if self.marker and self.marker.startswith("not run: "):
            return self.marker[len("not run: "):]
        return None

    @property
    def exits(self) -> set[int]:
        """The exit statuses the block's last command may have."""
        match = _EXIT.match(self.marker or "")
        return {int(c) for c in match["codes"].split("|")} if match else {0}

    def commands(self) -> list[Command]:
        """A console block's commands, each with the output shown after it."""
        commands: list[Command] = []
        lines = self.body.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                if not commands:
                    raise ValueError(f"{self.id}: a console block starts with a `$ ` command line")
                commands[-1].shown.append(lines[i])
                i += 1
                continue
            text = lines[i][2:]
            while _incomplete(text) and i + 1 < len(lines):
                i += 1
                text += "\n" + lines[i]
            commands.append(Command(text))
            i += 1
        return commands


def _incomplete(command: str) -> bool:
    if command.endswith("\\"):
        return True
    try:
        shlex.split(command)
    except ValueError:  # an open quote: the command goes on on the next line
        return True
    return False


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page`, in order."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        lang = lines[i][3:].strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
        if end is None:
            raise ValueError(f"{page_name(page)}:{i + 1}: a fenced block that is never closed")
        marker = _MARKER.match(lines[i - 1]) if i else None
        found.append(Block(page, i + 1, lang, "\n".join(lines[i + 1:end]) + "\n", marker["body"] if marker else None))
        i = end + 1
    return found


def indented_fences(page: Path) -> list[int]:
    """Lines of `page` where a fence starts after blanks (this convention puts them at column 0)."""
    return [n for n, line in enumerate(page.read_text().splitlines(), 1) if line.lstrip().startswith("```") and line[0] == " "]


def prose(page: Path) -> str:
    """The page without its fenced blocks and comments (what inline code spans and links are read from)."""
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.S | re.M)
    return re.sub(r"^<!--.*-->$", "", text, flags=re.M)


def spans(page: Path) -> list[str]:
    """The inline code spans of the page's prose (a span may run over a line break)."""
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose(page))]


def links(page: Path) -> list[str]:
    """The targets of the page's markdown links, outside code."""
    text = re.sub(r"`[^`]*`", "", prose(page))
    return re.findall(r"\]\(([^)\s]+)\)", text)


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes for `page`: lowercase, punctuation but `-` and `_` dropped,
    each blank a hyphen."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page), flags=re.M):
        text = heading.strip().lower().replace("`", "")
        found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def shown_matches(shown: list[str], actual: list[str]) -> bool:
    """Whether output `actual` is what `shown` shows: equal lines, where `...` inside a shown line
    stands for any text and a shown line of only `...` for any number of lines."""
    shown = _trim(shown)
    actual = _trim(actual)
    patterns = [None if s.strip() == "..." else re.compile(".*".join(map(re.escape, s.rstrip().split("..."))) + r"\Z")
                for s in shown]
    # reachable[j]: the shown lines so far can match actual[:j]
    reachable = [True] + [False] * len(actual)
    for pattern in patterns:
        step = [False] * (len(actual) + 1)
        for j in range(len(actual) + 1):
            if pattern is None:
                step[j] = reachable[j] or (j > 0 and step[j - 1])
            elif j > 0 and reachable[j - 1] and pattern.match(actual[j - 1].rstrip()):
                step[j] = True
        reachable = step
    return reachable[len(actual)]


def _trim(lines: list[str]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines
