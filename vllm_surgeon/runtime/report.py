"""The runtime's report and log: what is applied where (`applied()` and the one line per set every
process logs), warnings said in full once per run, and sets that did not load."""

from __future__ import annotations

import os

from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.refusal import Refusal, SurgeonError
from vllm_surgeon.engine.names import judge
from vllm_surgeon.engine.results import Plan
from vllm_surgeon.runtime.shared import INTERNAL, PENDING, AppliedSet, RuntimeState, log, process_name
from vllm_surgeon.runtime.warn_once import warn_once


class Reporting(RuntimeState):
    """Report and log: the part of `Runtime` that says what happened."""

    def _report_load_errors(self) -> None:
        """Sets that could not be found or parsed: stop the start, or (warn) say so and go on without them."""
        if not self.load_errors:
            return
        text = "\n".join(f"vllm-surgeon {getattr(e, 'verb', 'cannot load')} hunk set {n!r}: {e}" for n, e in self.load_errors)
        if self.policy == "fail":  # the advice a refusal gives (SurgeonError), for sets refused before planning
            raise SurgeonError(extra=text + "\nNothing of the enabled sets was applied. Fix or disable these "
                               "(VLLM_SURGEON_HUNKS), or set VLLM_SURGEON_ON_FAILURE=warn to run without them.")
        names = ", ".join(repr(n) for n, _ in self.load_errors)
        self._say(
            text,
            f"{{process}}: VLLM_SURGEON_ON_FAILURE=warn, running without these sets ({names}), which cannot be "
            f"loaded:\n{text}\nOther vLLM processes of this run say this in one line.",
            f"{{process}}: running without these sets ({names}; VLLM_SURGEON_ON_FAILURE=warn): they cannot "
            "be loaded; the full message was logged by {where}",
        )

    def _forked(self) -> None:
        self._log_pending = True

    def _log_when_known(self) -> None:
        """Log the applied line as soon as a module of a set is patched in this process (imported or
        in place), or when the plugin runs, whichever comes first; a module patched later gets a line
        of its own. So every process where a set takes effect says so (a Ray actor that imports one
        target and never calls vLLM's plugins too), in the words `applied()` uses."""
        if self._logged or self.plan is None:
            return
        if any(m in self.status for s in self.plan.accepted if s.name != INTERNAL for m in s.modules):
            self._log_applied()

    def _log_applied(self) -> None:
        """The one line per applied set that every process logs: what, where, which process."""
        self._logged = True
        for info in self.applied():
            how = ", ".join(f"{m} {state}" for m, state in info.modules.items())
            log.info(
                "applied set %r (%s) in pid %d (%s), vLLM %s: %s [%s]",
                info.name, info.path, info.pid, info.process, info.vllm_version or "unknown",
                ", ".join(info.targets), how,
            )

    def _compile_cache_off(self, refusal: Refusal) -> None:
        """Without the internal set, a patched model file could reuse a graph compiled from the
        unpatched code: turn vLLM's compile cache off instead (it is safe, only slower)."""
        if os.environ.get("VLLM_DISABLE_COMPILE_CACHE") != "1":
            os.environ["VLLM_DISABLE_COMPILE_CACHE"] = "1"
            log.warning(
                "this vLLM's compile-cache keying could not be taught about patched files (%s); "
                "set VLLM_DISABLE_COMPILE_CACHE=1 so no graph compiled from unpatched code is reused",
                refusal.summary(),
            )

    def _say(self, key: str, full: str, brief: str) -> None:
        """A warning in full once per run of vLLM, in one line in every other process (_warn_once)."""
        self._warnings.append((key, full, brief))
        warn_once(log, key, full, brief)

    def _warn(self, refusals: list[Refusal]) -> None:
        names = ", ".join(dict.fromkeys(repr(r.set_name) for r in refusals))
        error = SurgeonError(refusals, {s.name: s for s in self.sets}, running_without=True)
        first = refusals[0]
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        self._say(
            str(error),
            f"{{process}}: VLLM_SURGEON_ON_FAILURE=warn, running without the refused sets ({names}):\n{error}\n"
            "Other vLLM processes of this run say this in one line.",
            f"{{process}}: running without the refused sets ({names}; VLLM_SURGEON_ON_FAILURE=warn): "
            f"{first.title} at {first.origin} ({first.target}){more}; the full refusal was logged by {{where}}",
        )

    def _warn_findings(self, plan: Plan) -> None:
        """What applied sets' added lines read that static analysis says is gone but cannot be sure of
        (`name-gone`, `import-gone`: issue 14): the set runs, and every start says so (such a plan is not
        cached). Nothing is compared with another release here, so `attribute-gone` is never said (judge)."""
        for result in plan.results:  # no other release to compare with here (names.judge)
            judge(result, None, "", plan.vllm_version)
        warnings = [(name, f) for name, f in plan.warnings if name != INTERNAL]
        if not warnings:
            return
        text = "\n".join(f"  set {name!r}: {f.summary()}" for name, f in warnings)
        first = warnings[0][1]
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        self._say(
            "findings:" + text,
            f"{{process}}: applied, but an added line reads what this vLLM may not have "
            f"(`vllm-surgeon verify` shows it; the set still runs):\n{text}\nOther vLLM processes of this run say this in one line.",
            f"{{process}}: {first.kind} at {first.origin} ({first.name}){more}; logged in full by {{where}}",
        )

    def _applied(self, hunk_set: HunkSet) -> AppliedSet:
        version = self.plan.vllm_version if self.plan else None
        return AppliedSet(
            name=hunk_set.name,
            path=hunk_set.path,
            targets=self.targets.get(hunk_set.name, hunk_set.targets),
            modules={m: self.status.get(m, PENDING) for m in hunk_set.modules},
            vllm_version=version,
            pid=os.getpid(),
            process=process_name(),
        )

    def applied(self) -> list[AppliedSet]:
        if self.plan is None:
            return []
        return [self._applied(s) for s in self.plan.accepted if s.name != INTERNAL]
