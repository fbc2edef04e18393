"""The README as a newcomer uses it: its examples run as written against a live app, and what it names
(models, flags, files, sections) exists.

A runnable example is a fenced block with a marker right before it, an HTML comment that the rendered
page does not show:

    <!-- runnable: flags="--nowebui --api-auth alice:secret" writes="out.png 32x32" prints="Model: zoo-shapes" -->

flags:  what `webui.py` must be started with (the prose before the block must say `venv/bin/python webui.py
        <flags>`, so a reader knows it too); blocks with the same flags share one app.
writes: files the block writes, each a PNG of that size.
prints: text its output must hold.

The app is started the real way (webui.py in a subprocess, tests/app_process.py). What differs from a
reader's run, and why:
- the app serves on the README's port (7860 / 7861) when that port is free; when something else holds it,
  on a free port, and the block's `127.0.0.1:<port>` is rewritten to that port;
- the app gets `--outdir` and `ZOO_SETTINGS_FILE` in a temporary folder, so a run writes nothing into the
  checkout (neither changes what an example sends or gets back);
- a block runs in an empty temporary folder where `venv` is the running interpreter's environment, so the
  README's `venv/bin/python` works there; Python blocks run with that interpreter, bash blocks with
  `bash -e -o pipefail`.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from modules import cmd_args
from tests.app_process import ROOT, AppProcess, free_port

README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCED = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*runnable:(.*?)-->\s*\Z", re.S)
BLOCK_SECONDS = 600  # a 32x32 job takes ~1 s on a quiet machine, a minute on a loaded 2-core one
NOT_MODELS = ("tiny-sd15", "tiny-sdxl")  # the test suite's own fixtures: a reader has none of them


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    code: str
    flags: str
    writes: tuple[tuple[str, tuple[int, int]], ...]
    prints: str
    prose: str  # the text between the previous fenced block and the marker

    @property
    def port(self) -> int:
        ports = set(re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", self.code))
        assert len(ports) == 1, f"README line {self.line}: a runnable block talks to one port, found {ports}"
        return int(ports.pop())

    def __str__(self) -> str:
        return f"line{self.line}-{self.language}"


def runnable_blocks(text: str = README) -> list[Block]:
    blocks, previous_end = [], 0
    for match in FENCED.finditer(text):
        before = text[previous_end:match.start()]
        previous_end = match.end()
        marker = MARKER.search(before)
        if not marker:
            continue
        fields = dict(part.split("=", 1) for part in shlex.split(marker.group(1)))
        assert set(fields) <= {"flags", "writes", "prints"}, f"unknown marker fields {sorted(fields)}"
        writes = []
        for entry in filter(None, fields.get("writes", "").split(",")):
            name, size = entry.split()
            width, height = size.split("x")
            writes.append((name, (int(width), int(height))))
        blocks.append(Block(line=text.count("\n", 0, match.start()) + 2, language=match.group(1),
                            code=match.group(2), flags=fields.get("flags", ""), writes=tuple(writes),
                            prints=fields.get("prints", ""), prose=before[:marker.start()]))
    return blocks


BLOCKS = runnable_blocks()


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Outcome:
    returncode: int
    output: str
    code: str  # as run, after any port substitution


def run_block(block: Block, port: int, folder: Path) -> Outcome:
    code = block.code
    if port != block.port:
        code = re.sub(rf"(127\.0\.0\.1|localhost):{block.port}\b", rf"\g<1>:{port}", code)
    (folder / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    if block.language == "python":
        (folder / "example.py").write_text(code)
        command = [sys.executable, "example.py"]
    else:
        assert block.language in ("bash", "sh"), f"README line {block.line}: cannot run a {block.language!r} block"
        for tool in ("curl", "python3"):
            if tool in code and shutil.which(tool) is None:
                pytest.skip(f"the README example at line {block.line} needs {tool}, which is not installed")
        (folder / "example.sh").write_text(code)
        command = ["bash", "-e", "-o", "pipefail", "example.sh"]
    env = {"HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(folder / "gradio-client")}
    done = subprocess.run(command, cwd=folder, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=BLOCK_SECONDS)
    return Outcome(done.returncode, done.stdout + done.stderr, code)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[int, tuple[Outcome, Path]]:
    """Every runnable block run once, against one app per set of flags."""
    results = {}
    for flags in dict.fromkeys(block.flags for block in BLOCKS):
        group = [block for block in BLOCKS if block.flags == flags]
        wanted = {block.port for block in group}
        assert len(wanted) == 1, f"blocks run with flags {flags!r} name different ports: {wanted}"
        wanted = wanted.pop()
        port = wanted if port_is_free(wanted) else free_port()
        state = tmp_path_factory.mktemp("readme-app")
        app = AppProcess(*shlex.split(flags), "--outdir", str(state / "outputs"), port=port,
                         env={"ZOO_SETTINGS_FILE": str(state / "config.json")})
        with app:
            for block in group:
                folder = tmp_path_factory.mktemp(f"readme-{block}")
                try:
                    results[block.line] = (run_block(block, port, folder), folder)
                except pytest.skip.Exception as skipped:
                    results[block.line] = (skipped, folder)
    return results


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_runnable_block_does_what_it_says(block, outcomes):
    outcome, folder = outcomes[block.line]
    if isinstance(outcome, pytest.skip.Exception):
        pytest.skip(str(outcome))
    assert outcome.returncode == 0, f"README line {block.line} failed:\n{outcome.code}\n{outcome.output}"
    for name, size in block.writes:
        path = folder / name
        assert path.is_file(), f"README line {block.line} should write {name}:\n{outcome.output}"
        with Image.open(path) as image:
            assert (image.format, image.size) == ("PNG", size), f"{name}: {image.format} {image.size}"
    assert block.prints in outcome.output


def test_there_are_runnable_examples_of_both_kinds():
    assert {block.language for block in BLOCKS} >= {"bash", "python"}
    assert {block.flags for block in BLOCKS} >= {"", "--nowebui --api-auth alice:secret"}


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_each_runnable_block_says_how_to_start_the_server(block):
    command = "venv/bin/python webui.py" + (f" {block.flags}" if block.flags else "")
    assert f"`{command}`" in block.prose, f"README line {block.line}: the text before it should say `{command}`"


def test_the_infotext_example_is_what_the_api_example_writes(outcomes):
    """The infotext shown under txt2img is the real one: the built-in model's name and its real hash."""
    shown = re.search(r"^ {6}(a red circle.*\n {6}Negative prompt:.*\n {6}Steps:.*)$", README, re.M)
    assert shown, "the README shows an infotext example"
    example = "\n".join(line.strip() for line in shown.group(1).splitlines())
    written = []
    for block in BLOCKS:
        outcome, folder = outcomes[block.line]
        for name, _ in block.writes:
            if (folder / name).is_file():
                with Image.open(folder / name) as image:
                    written.append(image.info.get("parameters"))
    if not written:
        pytest.skip("no runnable example wrote an image here")
    assert example in written


def built_in_model_names() -> set[str]:
    models = ROOT / "models"
    names = {path.name for path in (models / "Stable-diffusion").iterdir() if path.is_dir()}
    for folder in ("Stable-diffusion", "Latent", "GAN", "VAE"):
        names |= {path.stem for path in (models / folder).glob("*.safetensors")}
        names |= {path.name for path in (models / folder).glob("*.safetensors")}
    return names


def test_examples_name_only_models_that_exist():
    for name in NOT_MODELS:
        assert name not in README, f"the README names {name}, a model only the tests have"
    named = set(re.findall(r'"sd_model_checkpoint":\s*"([^"]+)"', README))
    named |= set(re.findall(r"\bModel: ([\w.-]+)", README))
    named |= set(re.findall(r'\bmodel="([^"]+)"', README))
    named |= set(re.findall(r'\.predict\(\s*"([^"]+)"', README))
    assert named, "the README's examples name the built-in models"
    assert named <= built_in_model_names(), f"not built in: {named - built_in_model_names()}"


def flags_table() -> set[str]:
    section = README.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `--")]
    return {flag for cell in rows for flag in re.findall(r"--[a-z0-9][a-z0-9-]*", cell)}


def test_flags_table_lists_exactly_the_real_flags():
    real = {option for action in cmd_args.build_parser()._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"}
    table = flags_table()
    assert table - real == set(), "the README's flags table names flags webui.py does not have"
    assert real - table == set(), "flags of modules/cmd_args.py missing from the README's flags table"


def anchors(text: str) -> Iterator[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", FENCED.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def test_links_and_pictures_point_at_what_exists():
    known = set(anchors(README))
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if target.startswith("#"):
            assert target[1:] in known, f"no section for the link {target}"
        elif not re.match(r"https?://", target):
            assert (ROOT / target).exists(), f"the README links to {target}, which is not in the repository"
