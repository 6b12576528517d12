"""The examples install vllm-surgeon from where the user has it, never by name from a package index
(issue 13: vllm-surgeon is on no index, so whoever registers the name there would be installed as root
into CI jobs and serving images). Each example's install line runs as written, from a fresh clone of
this repository into a fresh virtual environment, adapted only by the variables the example documents.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, git

CI = REPO / "examples" / "ci" / "vllm-surgeon-verify.yml"
DOCKERFILE = REPO / "examples" / "docker" / "Dockerfile"
# `pip install vllm-surgeon` (or uv's), by name: whatever an index serves under that name.
# The examples pin Python 3.11 (the CI example's python-version): their installs are checked there, once.
pytestmark = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the examples install on Python 3.11; checked once")
BY_NAME = re.compile(r"pip3? install(\s+--?[\w-]+(=\S+)?)*\s+['\"]?vllm[-_]surgeon\b(?![-_/.\w])")


def ci_install() -> tuple[str, str]:
    """The CI workflow's VLLM_SURGEON_SOURCE default and its install step's command."""
    text = CI.read_text()
    source = re.search(r"^  VLLM_SURGEON_SOURCE: \"([^\"]*)\"", text, re.M)
    step = re.search(r"- name: Install vllm-surgeon[^\n]*\n\s+run: (.+)", text)
    assert source and step, "the CI example lost its VLLM_SURGEON_SOURCE or its install step"
    return source.group(1), step.group(1)


def docker_install() -> tuple[str, str]:
    """The Dockerfile's VLLM_SURGEON_SOURCE default and the install command of its RUN step."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    source = re.search(r"^ARG VLLM_SURGEON_SOURCE=(\S+)", text, re.M)
    run = re.search(r"^RUN --mount=\S+\s+(.+)$", text, re.M)
    assert source and run, "the Dockerfile lost its VLLM_SURGEON_SOURCE or its install step"
    return source.group(1), run.group(1).split("&&")[0].strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, str]:
    """A fresh clone of this repository's committed HEAD, and that commit."""
    dest = tmp_path_factory.mktemp("clone") / "vllm-surgeon"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    return dest, git(dest, "rev-parse", "HEAD").strip()


def fresh_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    return where


def run_line(line: str, cwd: Path, venv: Path, **variables: str) -> None:
    """`line` in a shell, as a CI runner or a Dockerfile RUN would, with `venv`'s tools first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_SURGEON_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-ec", line], cwd=cwd, env={**env, **variables}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"


def installed_from(venv: Path) -> dict:
    """Where vllm-surgeon in `venv` was installed from (PEP 610 direct_url.json), once its command runs."""
    listed = subprocess.run([str(venv / "bin" / "vllm-surgeon"), "list"], capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_")})
    assert listed.returncode == 0 and "priority  [hunk, bundled]" in listed.stdout, listed.stdout + listed.stderr
    code = "import importlib.metadata as m; print(m.distribution('vllm-surgeon').read_text('direct_url.json'))"
    return json.loads(subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True).stdout)


def test_no_example_or_doc_installs_vllm_surgeon_by_name_from_an_index():
    files = [*(REPO / "examples").rglob("*"), REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    found = [f"{f.relative_to(REPO)}: {m.group(0)}" for f in files if f.is_file() for m in BY_NAME.finditer(f.read_text())]
    assert found == []
    assert BY_NAME.search("pip install vllm-surgeon") and BY_NAME.search("uv pip install --system vllm-surgeon")
    assert not BY_NAME.search('pip install "$VLLM_SURGEON_SOURCE"') and not BY_NAME.search("pip install /path/to/vllm-surgeon")


def test_the_ci_example_installs_the_checkout_as_written(clone, tmp_path):
    checkout, _ = clone
    source, line = ci_install()
    assert source == "."  # as written: the repository the workflow runs in is the checkout
    venv = fresh_venv(tmp_path / "venv")
    run_line(line, checkout, venv, VLLM_SURGEON_SOURCE=source)
    where = installed_from(venv)
    assert where["url"] == checkout.as_uri() and "dir_info" in where


def test_the_ci_example_installs_a_git_url_pinned_to_a_commit(clone, tmp_path):
    checkout, commit = clone
    _, line = ci_install()
    venv = fresh_venv(tmp_path / "venv")
    run_line(line, tmp_path, venv, VLLM_SURGEON_SOURCE=f"git+{checkout.as_uri()}@{commit}")
    where = installed_from(venv)
    assert where["vcs_info"]["commit_id"] == commit


def test_the_ci_example_installs_a_wheel_built_from_the_checkout(clone, tmp_path):
    checkout, _ = clone
    _, line = ci_install()
    pytest.importorskip("build", reason="`python -m build` (the example's way to make the wheel) is not installed here")
    vendor = tmp_path / "repo" / "vendor"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(vendor), str(checkout)],
                   check=True, capture_output=True, timeout=900)
    (wheel,) = vendor.glob("vllm_surgeon-*.whl")
    venv = fresh_venv(tmp_path / "venv")
    run_line(line, vendor.parent, venv, VLLM_SURGEON_SOURCE=f"vendor/{wheel.name}")  # a path in the repository
    assert installed_from(venv)["url"] == wheel.as_uri()


def test_the_docker_example_installs_its_build_context(clone, tmp_path):
    """The build context (a checkout) is what `VLLM_SURGEON_SOURCE` names by default (/src in the image:
    here, the clone's path); uv installs into the Python that `UV_PYTHON` names (here, a fresh venv's)."""
    checkout, _ = clone
    source, line = docker_install()
    assert source == "/src" and line == 'uv pip install --system "$VLLM_SURGEON_SOURCE"'
    assert "UV_PYTHON" in DOCKERFILE.read_text()  # the variable used below is documented there
    tools = fresh_venv(tmp_path / "tools")
    subprocess.run([str(tools / "bin" / "pip"), "install", "-q", "uv"], check=True, capture_output=True, timeout=900)
    venv = fresh_venv(tmp_path / "venv")
    run_line(line, checkout, tools, VLLM_SURGEON_SOURCE=str(checkout), UV_PYTHON=str(venv / "bin" / "python"))
    assert installed_from(venv)["url"] == checkout.as_uri()
