"""`vllm-surgeon adopt PATH... --against SPEC`: patch sites found statically, each shape, each verdict;
`--json`, the table, `--out` (small fake trees; the patch files import nothing that exists)."""

from __future__ import annotations

import json

import pytest
from adopt_trees import cli, vllm_tree, write

from vllm_surgeon.engine import planner
from vllm_surgeon.sets.guardfile import parse_guard_file
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.releases import directory

SCHED = "vllm.v1.core.sched.scheduler"

# One file per site shape; every replacement is a copy of upstream's code with one change.
SHAPES = {
    "assign.py": '''
        import torch_npu  # never imported: discovery reads files statically
        from vllm.v1.core.sched.scheduler import Scheduler

        def finish(self, request) -> None:
            self.running.remove(request)
            request.finished = True

        Scheduler.finish = finish
    ''',
    "module_assign.py": '''
        import vllm.v1.core.sched.scheduler as sched_mod

        def admit(queue, budget: int) -> int:
            total = 0
            for request in queue:
                total += request.tokens + 1
            return min(total, budget)

        sched_mod.admit = admit
    ''',
    "with_setattr.py": '''
        from vllm.v1.core.sched import scheduler

        def finish_quietly(self, request) -> None:
            if request in self.running:
                self.running.remove(request)

        def apply():
            setattr(scheduler.Scheduler, "finish", finish_quietly)
    ''',
    "helper.py": '''
        from vllm.config import ModelConfig
        from mypkg.util import patch_or_inject

        def verify(self) -> None:
            if self.max_len < 0:
                raise ValueError("max_len must be positive")
            self.ready = True

        patch_or_inject(ModelConfig, "verify", verify)
    ''',
    "swap.py": '''
        import vllm.v1.core.sched.scheduler as s
        from vllm.v1.core.sched.scheduler import Scheduler

        class MyScheduler(Scheduler):
            def __init__(self, budget: int) -> None:
                super().__init__(budget)
                self.extra = 0

            def finish(self, request) -> None:
                self.running.remove(request)
                self.extra += 1

            def waiting_count(self) -> int:
                return len(self.waiting)

        s.Scheduler = MyScheduler
    ''',
    "swap_attrs.py": '''
        import vllm.v1.core.sched.scheduler as s

        class LimitedScheduler(s.Scheduler):
            LIMIT = 3

            def finish(self, request) -> None:
                if len(self.running) > self.LIMIT:
                    self.running.remove(request)

        s.Scheduler = LimitedScheduler
    ''',
    "arctic.py": '''
        from arctic_inference.patching import ArcticPatch
        from vllm.v1.core.sched.scheduler import Scheduler

        class SchedulerPatch(ArcticPatch[Scheduler]):
            _orig_finish = Scheduler.finish

            def finish(self, request) -> None:
                self._orig_finish(request)
                request.logged = True

            def __init__(self, budget: int) -> None:
                self.budget = budget * 2
                self.waiting = deque()
                self.running = []
    ''',
    "blog.py": '''
        from vllm_custom_patches.core import VLLMPatch
        from vllm.v1.core.sched.scheduler import Scheduler

        class PrioritySchedulerPatch(VLLMPatch[Scheduler]):
            def schedule_with_priority(self) -> list:
                return sorted(self.waiting, key=lambda r: r.priority)

            def _private_helper(self):
                return None
    ''',
    "wrappers.py": '''
        import functools
        from vllm.v1.core.sched.scheduler import Scheduler

        _orig_schedule = Scheduler.schedule

        def schedule(self) -> list:
            out = _orig_schedule(self)
            return out[:4]

        Scheduler.schedule = schedule
        Scheduler.admit_all = lambda self: None
        Scheduler.describe = staticmethod(functools.lru_cache(Scheduler.describe))
    ''',
    "hooks.py": '''
        from mypkg.hooks import when_imported

        @when_imported("vllm.v1.core.sched.scheduler")
        def patch_scheduler(mod):
            from mypkg.copies import scheduler_copies

            mod.Scheduler.finish = scheduler_copies.Scheduler.finish
    ''',
    "copies/scheduler_copies.py": '''
        class Scheduler:
            def finish(self, request) -> None:
                self.running.remove(request)
                self.running.sort()
    ''',
    "values.py": '''
        import vllm.v1.core.sched.scheduler as sched
        from unittest import mock

        sched.MAX_WAITING = 7

        def identical_admit(queue, budget: int) -> int:
            total = 0
            for request in queue:
                total += request.tokens
            return min(total, budget)

        mock.patch("vllm.v1.core.sched.scheduler.admit", identical_admit).start()

        def later():
            from vllm.v1.core.gone import Thing

            path = "vllm.v1.core.sched.scheduler.Scheduler.describe"
            patcher = mock.patch(path, identical_admit)
            Thing.run = identical_admit
    ''',
}

STRINGS = '''
    import os

    def _get_vllm_file(relative):
        return os.path.join("/somewhere/vllm", relative)

    def patch_files():
        path = _get_vllm_file("v1/core/sched/scheduler.py")
        content = open(path).read()
        old = "            self.budget -= request.tokens\\n"
        new = "            self.budget -= request.tokens\\n            request.admitted = True\\n"
        content = content.replace(old, new, 1)
        content = content.replace("MAX_WAITING = 1000", "MAX_WAITING = 5")
        for old_line, new_line in zip(["a"], [f"{path}"]):
            content = content.replace(old_line, new_line)
        open(path, "w").write(content)
'''


@pytest.fixture
def tree(tmp_path):
    return vllm_tree(tmp_path / "checkout")


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "src"
    for name, text in SHAPES.items():
        write(root, f"mypkg/{name}", text)
    return root / "mypkg"


def sites(tree, *paths, extra: tuple[str, ...] = ()) -> list[dict]:
    rc, output = cli("adopt", *map(str, paths), "--against", str(tree), "--json", *extra)
    assert rc == 0, output
    report = json.loads(output)
    assert report["schema"] == "vllm-surgeon/adopt/1"
    return report["sites"]


def by(rows: list[dict], file: str, target: str) -> dict:
    found = [r for r in rows if r["file"].endswith(file) and r["target"] == target]
    assert len(found) == 1, [(r["file"], r["target"], r["verdict"]) for r in rows]
    return found[0]


def test_every_site_shape_is_found_and_resolved_to_its_definition(tree, package):
    rows = sites(tree, package, extra=("--helper", "patch_or_inject"))
    assert set(rows[0]) >= {"file", "line", "target", "verdict", "reason", "hunks"}
    assert by(rows, "assign.py", f"{SCHED}:Scheduler.finish")["line"] == 9
    assert by(rows, "module_assign.py", f"{SCHED}:admit")["verdict"] == "adopted"
    assert by(rows, "with_setattr.py", f"{SCHED}:Scheduler.finish")["verdict"] == "adopted"
    # `from vllm.config import ModelConfig`: the class is defined in vllm.config.model
    helper = by(rows, "helper.py", "vllm.config.model:ModelConfig.verify")
    assert helper["verdict"] == "adopted" and "@@ vllm.config.model:ModelConfig.verify @@" in helper["hunks"]
    # `@when_imported("vllm...")`: the hook's parameter is that module; the copy is in another scanned file
    hooked = by(rows, "hooks.py", f"{SCHED}:Scheduler.finish")
    assert hooked["verdict"] == "adopted" and "+        self.running.sort()" in hooked["hunks"]


def test_without_the_helper_named_its_calls_are_not_sites(tree, package):
    assert not [r for r in sites(tree, package) if r["file"].endswith("helper.py")]


def test_a_class_swap_gives_a_site_per_method(tree, package):
    rows = [r for r in sites(tree, package) if r["file"].endswith("swap.py")]
    verdicts = {r["target"]: r["verdict"] for r in rows}
    assert verdicts == {
        f"{SCHED}:Scheduler.__init__": "wrapper",  # super().__init__ in the subclass swapped in is the original
        f"{SCHED}:Scheduler.finish": "adopted",
        f"{SCHED}:Scheduler.waiting_count": "new",  # added to the class: plain code, an add-only hunk
    }
    assert {r["line"] for r in rows} == {17}  # the line that swaps the class in
    new = by(rows, "swap.py", f"{SCHED}:Scheduler.waiting_count")
    assert new["hunks"].startswith(f"@@ {SCHED}:Scheduler\n+\n+    def waiting_count(self) -> int:")


def test_a_swapped_in_method_reading_its_own_class_attribute_is_refused(tree, package):
    (row,) = [r for r in sites(tree, package) if r["file"].endswith("swap_attrs.py")]
    assert row["verdict"] == "refused"
    assert row["reason"].startswith(f"reads LIMIT, class attribute(s) of LimitedScheduler that {SCHED}:Scheduler lacks")


def test_patch_classes_apply_their_members(tree, package):
    rows = sites(tree, package)
    wrapped = by(rows, "arctic.py", f"{SCHED}:Scheduler.finish")
    assert wrapped["verdict"] == "wrapper" and "_orig_finish" in wrapped["reason"] and wrapped["hunks"] == ""
    assert wrapped["digest"].startswith("ast1:")  # what a guard record of it keeps (`vllm-surgeon guard`'s digest)
    # ArcticPatch applies dunders too (the blog's VLLMPatch skips every _name)
    assert by(rows, "arctic.py", f"{SCHED}:Scheduler.__init__")["verdict"] == "adopted"
    saved = by(rows, "arctic.py", f"{SCHED}:Scheduler._orig_finish")
    assert saved["verdict"] == "wrapper" and "keeps the original Scheduler.finish" in saved["reason"]
    assert saved["digest"] == wrapped["digest"]  # both depend on Scheduler.finish as it is at SPEC
    blog = [r for r in rows if r["file"].endswith("blog.py")]
    assert [(r["target"], r["verdict"]) for r in blog] == [(f"{SCHED}:Scheduler.schedule_with_priority", "new")]


def test_wrappers_are_never_turned_into_hunks(tree, package):
    rows = [r for r in sites(tree, package) if r["file"].endswith("wrappers.py")]
    verdicts = {r["target"]: (r["verdict"], r["reason"]) for r in rows}
    assert verdicts[f"{SCHED}:Scheduler.schedule"][0] == "wrapper"
    assert "_orig_schedule" in verdicts[f"{SCHED}:Scheduler.schedule"][1]
    assert verdicts[f"{SCHED}:Scheduler.describe"][0] == "wrapper"  # lru_cache(Scheduler.describe)
    # a lambda installed as a method the class lacks: new, and it stays
    assert verdicts[f"{SCHED}:Scheduler.admit_all"][0] == "new"
    assert all(r["hunks"] == "" for r in rows)


def test_values_and_identical_copies(tree, package):
    rows = [r for r in sites(tree, package) if r["file"].endswith("values.py")]
    verdicts = {r["target"]: r["verdict"] for r in rows}
    assert verdicts[f"{SCHED}:admit"] == "identical"  # installed with mock.patch("...", f).start()
    assert verdicts[f"{SCHED}:MAX_WAITING"] == "refused"
    # mock.patch of a path held in a name; a class the release does not have (a dead patch)
    assert verdicts[f"{SCHED}:Scheduler.describe"] == "adopted"
    dead = by(rows, "values.py", "vllm.v1.core.gone.Thing.run")
    assert dead["verdict"] == "refused" and dead["reason"] == "vllm.v1.core.gone.Thing is not in vllm 0.99.0 (tree " + \
        str(tree) + ")"


def test_string_replacements_of_vllm_files_become_hunks_or_say_why_not(tmp_path, tree):
    path = write(tmp_path / "src", "strpatch/patches.py", STRINGS)
    rows = sites(tree, path)
    assert [(r["line"], r["kind"], r["verdict"]) for r in rows] == [
        (12, "string-replace", "adopted"), (13, "string-replace", "refused"), (15, "string-replace", "refused")]
    assert rows[0]["target"] == f"{SCHED}:Scheduler.schedule"
    assert "+            request.admitted = True" in rows[0]["hunks"]
    assert "not in vllm.v1.core.sched.scheduler" in rows[1]["reason"] and "does nothing" in rows[1]["reason"]
    assert "not a literal" in rows[2]["reason"]


def test_the_table_is_one_line_a_site_with_the_counts(tree, package):
    rc, output = cli("adopt", str(package), "--against", str(tree))
    assert rc == 0
    lines = output.splitlines()
    assert lines[0].startswith("adopt: ") and "against vllm 0.99.0" in lines[0]
    assert any(line.split()[:2] == ["wrapper", f"{SCHED}:Scheduler.schedule"] for line in lines)
    assert lines[-1].startswith(tuple("0123456789")) and "adopted" in lines[-1] and "wrapper" in lines[-1]


def test_out_writes_every_adopted_site_as_one_checked_set(tmp_path, tree, package):
    out = tmp_path / "mine.hunk"
    rc, output = cli("adopt", str(package), "--against", str(tree), "--out", str(out))
    assert rc == 0, output
    assert f"wrote {out}" in output
    hunk_set = load_file(out)
    plan = planner.plan([hunk_set], directory(tree).read, "0.99.0")
    assert not plan.refusals
    # Two sites adopt Scheduler.finish differently (assign.py, with_setattr.py, hooks.py...): one is kept, the
    # others are refused as conflicts, so the set gives one consistent module.
    assert plan.modules[SCHED].text.count("def finish(") == 1
    assert "conflicts with another site" in output


def test_guard_out_records_the_upstream_functions_the_wrappers_depend_on(tmp_path, tree, package):
    guard = tmp_path / "mine.guard"
    rc, output = cli("adopt", str(package), "--against", str(tree), "--guard-out", str(guard))
    assert rc == 0, output
    assert f"wrote {guard}: " in output
    record = parse_guard_file(guard.read_text(), str(guard), "mine")
    recorded = {str(f.target): f for f in record.functions}
    wrapped = recorded[f"{SCHED}:Scheduler.schedule"]
    assert any(s.endswith(" wrapper") and "wrappers.py:" in s for s in wrapped.sites), wrapped.sites
    assert all(" adopted" not in s and " identical" not in s for f in record.functions for s in f.sites)
    rc, output = cli("verify", "--files", str(guard), "--against", str(tree))
    assert rc == 0, output
    rc, output = cli("adopt", str(package), "--against", str(tree), "--guard-out", str(tmp_path / "mine.hunk"))
    assert rc == 2


def test_discovery_of_nothing_and_of_a_missing_path(tmp_path, tree, capsys):
    empty = write(tmp_path, "empty/nothing.py", "x = 1\n")
    rc, output = cli("adopt", str(empty), "--against", str(tree))
    assert rc == 0 and output.splitlines()[-1] == "no patch sites found"
    rc, _ = cli("adopt", str(tmp_path / "nowhere"), "--against", str(tree))
    assert rc == 2 and "nowhere: no such file or folder" in capsys.readouterr().err
    rc, output = cli("adopt", str(empty), "--against", str(tree), "--out", str(tmp_path / "x.hunk"))
    assert rc == 1 and "no site was adopted" in output and not (tmp_path / "x.hunk").exists()
    broken = write(tmp_path, "empty/broken.py", "def f(:\n")
    rc, output = cli("adopt", str(broken.parent), "--against", str(tree))
    assert rc == 0 and f"unreadable: {broken}:1: does not parse" in output
    rc, _ = cli("adopt", str(broken), "--against", str(tree))
    assert rc == 2 and f"{broken}:1: does not parse" in capsys.readouterr().err
