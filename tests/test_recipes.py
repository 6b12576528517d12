"""The documentation's recipes (README.md, docs/) are the files the repository ships, and the parts that
can run here do run.

- pre-commit: the hook of .pre-commit-hooks.yaml, run by a real pre-commit (`try-repo`) on a good
  and a refused set file; the documented local hook config, run the same way.
- GitHub Actions: the workflow's commands are the documented ones and parse as vllm-surgeon
  commands; its verify step, run here, exits 0 on good sets and 1 on a refused one, writing JSON.
- Docker: the files the Dockerfile copies exist, its environment names them, its commands are the
  documented ones, and its sets apply to the vLLM release of its FROM tag.
- pytest: the documented example test is tests/test_priority_set_in_vllms_scheduler.py, word for word.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, surgeon_env

from vllm_surgeon.commands.cli import _parser

# The documentation: README.md and the docs/ pages the recipes moved to (issue 15); a recipe is found
# wherever it is documented, and must be documented once.
README = "\n".join(page.read_text() for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
STALE = "@@ vllm.v1.request:Request.__lt__\n-        return 42\n+        return 0\n"


def readme_block(containing: str) -> str:
    """The documentation's fenced code block that contains `containing` (exactly one)."""
    blocks = [b for b in re.findall(r"^```[a-z]*\n(.*?)^```\n", README, re.S | re.M) if containing in b]
    assert len(blocks) == 1, f"{len(blocks)} code blocks of the documentation contain {containing!r}"
    return blocks[0]


def parses_as_vllm_surgeon(command: str) -> None:
    argv = shlex.split(command.split(">")[0])
    assert argv[0] == "vllm-surgeon", command
    _parser().parse_args(argv[1:])  # SystemExit (a failed test) on an unknown option


def git_repo(path: Path, sets: dict[str, str]) -> Path:
    """A git repository holding hunks/<name> files, as a user's repository of sets."""
    (path / "hunks").mkdir(parents=True)
    for name, text in sets.items():
        (path / "hunks" / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    return path


def pre_commit(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """The real pre-commit of this venv, with this venv's `vllm-surgeon` first on PATH."""
    env = surgeon_env(PRE_COMMIT_HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


# -- pre-commit -------------------------------------------------------------------------------------

def test_pre_commit_hook_definition_runs_verify_on_set_files():
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "vllm-surgeon-verify" and hook["language"] == "system"
    parses_as_vllm_surgeon(hook["entry"] + " hunks/priority.hunk")
    files = re.compile(hook["files"])
    assert all(files.search(p) for p in ("hunks/a.hunk", "x/b.patch", "c.diff"))
    assert not any(files.search(p) for p in ("setup.py", "README.md", "a.hunk.orig"))
    local = yaml.safe_load(readme_block("repo: local"))["repos"][0]["hooks"][0]
    assert local["id"] == hook["id"] and local["entry"] == hook["entry"] and local["language"] == hook["language"]


@pytest.mark.needs_vllm  # verifies the bundled set against the installed vLLM
def test_pre_commit_try_repo_passes_a_good_set_and_fails_a_refused_one(tmp_path):
    user = git_repo(tmp_path / "sets-repo", {"priority.hunk": (REPO / "hunks" / "priority.hunk").read_text(),
                                             "stale.hunk": STALE, "broken.hunk": "@@ not a target\n"})
    home = tmp_path / "pre-commit-home"
    good = pre_commit(["try-repo", str(REPO), "vllm-surgeon-verify", "--files", "hunks/priority.hunk"], user, home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r"vllm-surgeon verify .*Passed", good.stdout)
    bad = pre_commit(["try-repo", str(REPO), "vllm-surgeon-verify", "--files", "hunks/priority.hunk", "hunks/stale.hunk"],
                     user, home)
    assert bad.returncode == 1 and "Failed" in bad.stdout and "- exit code: 1" in bad.stdout
    assert "stale  REFUSED" in bad.stdout and "|        return 42" in bad.stdout
    unreadable = pre_commit(["try-repo", str(REPO), "vllm-surgeon-verify", "--files", "hunks/broken.hunk"], user, home)
    assert unreadable.returncode == 1 and "- exit code: 2" in unreadable.stdout and "broken.hunk:1" in unreadable.stdout


@pytest.mark.needs_vllm  # verifies the bundled set against the installed vLLM
def test_readme_local_pre_commit_config_checks_the_changed_sets(tmp_path):
    user = git_repo(tmp_path / "sets-repo", {"priority.hunk": (REPO / "hunks" / "priority.hunk").read_text(),
                                             "stale.hunk": STALE})
    (user / ".pre-commit-config.yaml").write_text(readme_block("repo: local"))
    (user / "notes.md").write_text("not a set\n")
    home = tmp_path / "pre-commit-home"
    ok = pre_commit(["run", "vllm-surgeon-verify", "--files", "hunks/priority.hunk", "notes.md"], user, home)
    assert ok.returncode == 0 and "Passed" in ok.stdout, ok.stdout + ok.stderr
    refused = pre_commit(["run", "vllm-surgeon-verify", "--files", "hunks/stale.hunk"], user, home)
    assert refused.returncode == 1 and "stale  REFUSED" in refused.stdout


# -- GitHub Actions ---------------------------------------------------------------------------------

WORKFLOW = REPO / "examples" / "ci" / "vllm-surgeon-verify.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_runs_on_a_schedule_and_on_pull_requests_with_the_documented_command():
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert triggers["schedule"][0]["cron"] and "pull_request" in triggers
    steps = workflow["jobs"]["verify"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert 'pip install "$VLLM_SURGEON_SOURCE"' in runs and workflow["env"]["VLLM_SURGEON_SOURCE"] == "."  # issue 13
    documented = readme_block("vllm-surgeon verify --against latest --json").strip()
    assert documented in runs
    for command in runs:
        if command.startswith("vllm-surgeon"):
            parses_as_vllm_surgeon(command)
    assert workflow["env"]["VLLM_SURGEON_PATH"] == "hunks" and "VLLM_SURGEON_PATH=hunks" in README
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "vllm-surgeon-verify.json"


@pytest.mark.needs_vllm  # verifies the bundled set against the installed vLLM
def test_workflow_verify_step_fails_the_job_on_a_refused_set_and_writes_json(tmp_path):
    """The step's command, run here against the installed vLLM (`latest` needs the index)."""
    (command,) = [s["run"] for s in _workflow()["jobs"]["verify"]["steps"] if "--json" in s.get("run", "")]
    here = command.replace(" --against latest", "")
    repo = git_repo(tmp_path / "repo", {"priority.hunk": (REPO / "hunks" / "priority.hunk").read_text()})
    env = surgeon_env(VLLM_SURGEON_PATH="hunks", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    ok = subprocess.run(here, shell=True, cwd=repo, env=env, capture_output=True, text=True)
    report = json.loads((repo / "vllm-surgeon-verify.json").read_text())
    assert ok.returncode == 0 and report["schema"] == "vllm-surgeon/verify/1" and report["ok"], ok.stderr
    (repo / "hunks" / "stale.hunk").write_text(STALE)
    bad = subprocess.run(here, shell=True, cwd=repo, env=env, capture_output=True, text=True)
    report = json.loads((repo / "vllm-surgeon-verify.json").read_text())
    assert bad.returncode == 1 and not report["ok"]
    assert {s["name"]: s["status"] for s in report["sets"]}["stale"] == "refused"


# -- Docker -----------------------------------------------------------------------------------------

DOCKERFILE = REPO / "examples" / "docker" / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, out = "", []
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        joined += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = joined.partition(" ")
            out.append((keyword.upper(), rest.strip()))
            joined = ""
    return out


def _docker_facts() -> dict:
    instructions = dockerfile_instructions()
    (base,) = [a for k, a in instructions if k == "FROM"]
    (copy,) = [a for k, a in instructions if k == "COPY"]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in instructions if k == "ENV")))
    runs = [a for k, a in instructions if k == "RUN"]
    return {"base": base, "copy": copy.split(), "env": env, "runs": runs}


def test_dockerfile_copies_files_that_exist_and_enables_sets_found_there():
    facts = _docker_facts()
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", facts["base"])
    source, destination = facts["copy"]
    # The documented build runs from the repository's root, which holds the copied directory.
    assert "docker build -f examples/docker/Dockerfile -t vllm-surgeon-priority ." in readme_block("docker build")
    assert (REPO / source).is_dir()
    assert facts["env"]["VLLM_SURGEON_PATH"].rstrip("/") == destination.rstrip("/")
    for name in facts["env"]["VLLM_SURGEON_HUNKS"].split(","):
        assert any((REPO / source / f"{name}{suffix}").is_file() for suffix in (".hunk", ".patch", ".diff", ".py")), name
    (install_and_verify,) = facts["runs"]
    mount, _, commands = install_and_verify.partition(" ")
    assert mount == "--mount=type=bind,target=/src,rw"  # the build context, for this step only
    install, protect, verify = (part.strip() for part in commands.split("&&"))
    assert install == 'uv pip install --system "$VLLM_SURGEON_SOURCE"'  # issue 13: never by name from an index
    assert protect == f"chmod -R go-w {Path(destination).parent}"
    parses_as_vllm_surgeon(verify)
    header = [line[1:].strip() for line in DOCKERFILE.read_text().splitlines() if line.startswith("#   docker ")]
    assert header == [line.strip() for line in readme_block("docker build").strip().splitlines()]
    assert f"`{facts['base']}`" in README


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="COPY makes root's files: needs root")
def test_dockerfile_makes_sets_copied_from_a_group_writable_checkout_readable_by_vllm(tmp_path):
    """COPY keeps the context's mode bits (0664 files, 0775 folders under a umask of 002): vLLM refuses
    those (issue 13) until the build's `chmod -R go-w` runs."""
    from vllm_surgeon.sets.loader import load_file
    from vllm_surgeon.sets.reader import UntrustedSetError

    facts = _docker_facts()
    source, destination = facts["copy"]
    image = tmp_path / "image"
    copied = image / destination.strip("/")
    shutil.copytree(REPO / source, copied)
    for path in [copied.parent, copied, *copied.rglob("*")]:
        path.chmod(0o775 if path.is_dir() else 0o664)
    name = facts["env"]["VLLM_SURGEON_HUNKS"].split(",")[0]
    with pytest.raises(UntrustedSetError, match="is writable by group root"):
        load_file(copied / f"{name}.hunk")
    protect = [part.strip() for part in facts["runs"][0].split("&&")][1]
    subprocess.run(protect.replace(" /", f" {image}/"), shell=True, check=True)
    assert load_file(copied / f"{name}.hunk").name == name


def test_kubernetes_recipe_mounts_the_configmap_read_only_where_the_search_path_looks():
    """The README's ConfigMap recipe (issue 13): the layout it makes is run on a read-only tmpfs in test_trust."""
    pod = yaml.safe_load(readme_block("configMap:"))["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    (mount,) = container["volumeMounts"]
    (volume,) = pod["volumes"]
    assert mount["readOnly"] is True and mount["mountPath"] == env["VLLM_SURGEON_PATH"] and "subPath" not in mount
    assert volume["name"] == mount["name"] and volume["configMap"]["name"] in readme_block("kubectl create configmap")
    assert env["VLLM_SURGEON_HUNKS"] == "priority" and (REPO / "hunks" / "priority.hunk").is_file()


@pytest.mark.vllm
def test_dockerfile_sets_apply_to_the_vllm_release_of_its_base_image():
    """What the image's build runs (`vllm-surgeon verify ...`), against that release's wheel, here."""
    facts = _docker_facts()
    version = facts["base"].rsplit(":v", 1)[1]
    verify = [part.strip() for part in facts["runs"][0].split("&&")][-1]
    source = facts["copy"][0]
    env = surgeon_env(VLLM_SURGEON_PATH=str(REPO / source), VLLM_SURGEON_CACHE_DIR=os.environ["VLLM_SURGEON_CACHE_DIR"])
    argv = [sys.executable, "-m", "vllm_surgeon", *shlex.split(verify)[1:], "--against", version]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"verify against vllm {version} (wheel" in out.stdout and "0 refused." in out.stdout


# -- the pytest example -----------------------------------------------------------------------------

def test_readme_pytest_example_is_the_test_file_that_runs_here():
    example = readme_block("def test_priority_set_serves_an_old_low_priority_request")
    assert example == (REPO / "tests" / "test_priority_set_in_vllms_scheduler.py").read_text()


def test_readme_server_command_is_the_one_the_server_test_runs():
    from test_real_server import SERVE_ARGS, STREAMS

    block = readme_block("taskset -c 0 .venv/bin/python -m vllm.entrypoints.openai.api_server")
    command = " ".join(block.replace("\\\n", " ").split())
    assert " ".join(SERVE_ARGS) in command and "VLLM_SURGEON_HUNKS=priority" in command
    # The test pins the server to one CPU and tells vLLM's worker the same, as the README does.
    assert "VLLM_CPU_OMP_THREADS_BIND=0 " in command and "VLLM_SURGEON_PRIORITY_AGING=20 " in command
    client = readme_block("examples/server/low_priority_wait.py").split()
    assert client[:3] == ["taskset", "-c", "1"]
    assert client[client.index("--stream-s") + 1] == f"{STREAMS[0]:g}"


def test_no_recipe_refers_to_a_missing_file():
    for relative in re.findall(r"`((?:examples|tests|hunks)/[\w./-]+)`", README):
        assert (REPO / relative).exists(), relative
    assert shutil.which("git"), "git is needed by pre-commit"
