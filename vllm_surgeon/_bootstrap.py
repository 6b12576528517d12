"""Imported by `vllm_surgeon.pth` at interpreter start when VLLM_SURGEON_HUNKS names a set: it only
puts a tiny finder on `sys.meta_path` that waits for `vllm` to be imported.

Every interpreter of the environment runs the `.pth` line (pip, tools, Ray and multiprocessing
helpers), so nothing else happens here (issue 7, items 9-10): no set is located, read or executed,
and this module imports nothing beyond what `site` already has. When an interpreter actually
imports `vllm`, and only then, the finder steps aside, vllm-surgeon's runtime loads the sets and
plans (errors in the sets then stop `import vllm`: fail closed), and vLLM's `__init__` runs.
`importlib.util.find_spec("vllm")` alone (libraries probing whether vLLM is installed) costs
nothing: the runtime starts when the module is executed, not when it is found.
"""

import sys

_TRIGGER = "vllm"


class WaitForVllm:
    """First on `sys.meta_path` until `vllm` is imported; answers None for every other name at once."""

    # `trees.installed.other_finders` skips finders with this mark: reading vLLM's source never wakes us.
    _vllm_surgeon_finder = True

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TRIGGER:
            return None
        spec = None
        for finder in sys.meta_path:
            if getattr(finder, "_vllm_surgeon_finder", False):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target) if target is not None else find(fullname, path)
            if spec is not None:
                break
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None  # not installed, or an unusual loader: the vLLM plugin still applies the sets
        spec.loader = _StartThenLoad(spec.loader)
        return spec

    def invalidate_caches(self):
        pass


class _StartThenLoad:
    """The real loader of `vllm`, preceded by starting vllm-surgeon; the module keeps the real loader."""

    def __init__(self, real):
        self._real = real

    def create_module(self, spec):
        create = getattr(self._real, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._real
        module.__loader__ = self._real
        disarm()
        from vllm_surgeon.runtime.runtime import start

        start()  # plans; a refused set raises SurgeonError here and `import vllm` fails (fail closed)
        self._real.exec_module(module)

    def __getattr__(self, name):  # is_package, get_code, get_resource_reader, ...
        return getattr(self._real, name)


def disarm():
    """Take the waiting finder off `sys.meta_path` (idempotent)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, WaitForVllm)]


def arm():
    if not any(isinstance(f, WaitForVllm) for f in sys.meta_path):
        sys.meta_path.insert(0, WaitForVllm())


arm()
