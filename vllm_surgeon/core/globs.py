"""Path globs of `skip:` fields, matched in time linear in the path (issue 13 item 17).

gitignore-like: `*` and `?` stay inside a folder name, `**` crosses folders, `**/` is zero or more
folders. A run of three or more `*` is `**`. A backtracking regex took 11 s for eighteen `*` in a row
(each `[^/]*` tries every split of the text); here the pattern is a small automaton whose set of live
states is advanced one character at a time: O(len(path) x len(pattern)), whatever the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

# Token kinds: a literal character, `?`, `*` (inside a folder name), `**` (across folders), and a
# state that consumes nothing (only its epsilon moves lead on).
_LIT, _ONE, _STAR, _ANY, _NONE = range(5)


@dataclass(frozen=True)
class Glob:
    """One compiled pattern: tokens, and the epsilon moves (tokens that may match nothing)."""

    pattern: str
    tokens: tuple[tuple[int, str], ...]
    skips: tuple[tuple[int, ...], ...]  # skips[i]: states reachable from state i without a character

    def match(self, text: str, from_any_folder: bool = False) -> bool:
        """Whether the whole of `text` matches; from_any_folder: or any suffix of it starting after a `/`."""
        accept = len(self.tokens)
        start = self._closure({0})
        live = set(start)
        for ch in text:
            moved: set[int] = set()
            for i in live:
                if i == accept:
                    continue
                kind, value = self.tokens[i]
                if kind == _ANY or (kind == _STAR and ch != "/"):
                    moved.add(i)
                elif (kind == _ONE and ch != "/") or (kind == _LIT and ch == value):
                    moved.add(i + 1)
            live = self._closure(moved)
            if from_any_folder and ch == "/":
                live |= start
            if not live and not from_any_folder:
                return False
        return accept in live

    def _closure(self, states: set[int]) -> set[int]:
        out = set(states)
        todo = list(states)
        while todo:
            for j in self.skips[todo.pop()]:
                if j not in out:
                    out.add(j)
                    todo.append(j)
        return out


def compile_glob(pattern: str) -> Glob:
    """`pattern` as an automaton: `**/` is an optional (`**` then `/`); runs of 3+ `*` are `**`."""
    tokens: list[tuple[int, str]] = []
    skips: list[list[int]] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "*":
            run = len(pattern) - i - len(pattern[i:].lstrip("*"))
            i += run
            if run == 1:
                tokens.append((_STAR, ""))
                skips.append([len(tokens)])
                continue
            if pattern.startswith("/", i):  # `**/`: zero or more folders
                at = len(tokens)  # a choice (consumes nothing): past the whole, or `**` then `/`
                tokens += [(_NONE, ""), (_ANY, ""), (_LIT, "/")]
                skips += [[at + 1, at + 3], [at + 2], []]
                i += 1
                continue
            tokens.append((_ANY, ""))
            skips.append([len(tokens)])
            continue
        tokens.append((_ONE, "") if pattern[i] == "?" else (_LIT, pattern[i]))
        skips.append([])
        i += 1
    skips.append([])  # the accepting state
    return Glob(pattern, tuple(tokens), tuple(tuple(s) for s in skips))
