"""Take a live module back from its patched code to its own, with the in-place machinery.

Used when a set must be withdrawn after some of its modules already run its code: a patched module
raised at import (issue 7 item 4), and the set's other modules are restored. The result is an
ordinary PatchedModule whose "original" is the patched text and whose "patched" text is the file's
own source, compiled with the file's own line numbers: `_inplace.patch_modules` gives every live
function its original code back, re-executes changed statements and drops the names the set added.
"""

from __future__ import annotations

import ast
import difflib

from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine.linemap import Compiled, changed_lines, find_units
from vllm_surgeon.engine.results import PatchedModule


def revert(patched: PatchedModule) -> PatchedModule:
    """What takes a module running `patched` (a fully planned one, with its text) back to its source."""
    source = patched.source
    old_lines = patched.text.split("\n")
    new_lines = source.lines()
    origin_of: list[int | None] = [None] * len(new_lines)
    for block in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            origin_of[block.b + k] = block.a + k
    live_index = ScopeIndex(patched.text, source.path)
    tree = ast.parse(source.text, source.path)
    changed = changed_lines(old_lines, new_lines, origin_of, live_index.tree, tree)
    units = find_units(tree, changed, new_lines)
    code = compile(tree, source.path, "exec", dont_inherit=True)
    compiled = Compiled(source.text, code, tree, units)
    return PatchedModule(ModuleSource(source.module, source.path, patched.text), source.text, (), compiled, live_index)
