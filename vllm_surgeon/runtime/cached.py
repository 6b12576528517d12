"""The runtime's use of the on-disk code cache: a plan loaded instead of made, and a plan kept for
the next process (runtime/cache.py is the cache itself)."""

from __future__ import annotations

import sys

from vllm_surgeon.core import settings as _settings
from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.engine.results import Plan, SetResult
from vllm_surgeon.runtime.report import Reporting
from vllm_surgeon.runtime.shared import log
from vllm_surgeon.trees.installed import read_installed


class Caching(Reporting):
    """The code cache, as `Runtime` uses it."""

    def _read(self, module: str):
        if module not in self._sources:
            self._sources[module] = read_installed(module)
        return self._sources[module]

    def _cached_plan(self, sets: list[HunkSet], version: str | None) -> Plan | None:
        """The plan from the code cache, when nothing it changes is imported yet (the bootstrap's case)."""
        from vllm_surgeon.engine.paths import resolve
        from vllm_surgeon.runtime.cache import CodeCache, key, planned_modules

        if not _settings.code_cache():
            self.cache_reason = "off (VLLM_SURGEON_CODE_CACHE=0)"
            return None
        if any(s.kind == "py" for s in sets):
            # A transform is Python: what it makes may depend on helper modules it imports, files it reads,
            # libcst's version. No key covers all that, and a stale module is worse than a slower start
            # (issue 13: a changed helper was served stale), so plans with a .py set are never cached.
            self.cache_reason = "not used: a .py set runs code the cache key cannot cover"
            return None
        try:
            cache = CodeCache()
        except _settings.SettingError as exc:  # a cache directory that cannot be named: plan, and say so
            self.cache_reason = f"not used: {exc}"
            self._say(str(exc), f"{{process}}: {exc}; the code cache is not used (every vLLM process plans again)",
                      f"{{process}}: the code cache is not used ({exc.name} cannot be read); said in full by {{where}}")
            return None
        resolved = [resolve(s, self._tree, version) for s in sets]
        if any(r.refusals or r.created for r in resolved):
            self.cache_reason = "not used: a diff path does not resolve, or a set creates a module"
            return None
        sets = [r.hunk_set for r in resolved]
        modules = {m for s in sets for m in s.modules}
        if any(m in sys.modules for m in modules):
            self.cache_reason = "not used: a target module was imported before the hook (patched in place)"
            return None
        sources = {m: self._read(m) for m in modules}
        if any(v is None for v in sources.values()):
            self.cache_reason = "not used: a target module has no source"
            return None
        self._cache_key = key(sets, sources, version)
        if self._cache_key is None:
            self.cache_reason = "not used: a set was not read from a file"
            return None
        cached = cache.load(self._cache_key, sources, planned_modules(sets))
        self.cache_reason = cache.reason
        log.debug("code cache: %s", cache.reason)
        if cached is None:
            return None
        self.targets.update(cache.targets)
        return Plan([SetResult(s) for s in sets], cached, version)

    def _store(self, plan: Plan, sets: list[HunkSet], version: str | None) -> None:
        """Keep a plan every set of which applied, for the next process (never a partial one)."""
        from vllm_surgeon.runtime.cache import CodeCache

        if self._cache_key is None or plan.refusals or self.status or [s.name for s in sets] != [s.name for s in self._all_sets()]:
            return
        if plan.warnings:  # planned again at every start, so every start says them (_warn_findings)
            return
        cache = CodeCache()
        cache.reason = self.cache_reason
        cache.store(self._cache_key, plan.modules, {r.hunk_set.name: r.located_targets for r in plan.results})
        self.cache_reason = cache.reason
        log.debug("code cache: %s", cache.reason)
