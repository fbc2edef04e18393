"""Every flag `webui.py --help` lists starts the app through its real entry point (webui.py, as a user
runs it) and the server comes up; --help itself exits cleanly.

The flags are read from the parser itself, so a flag added later is started here too, with a value
chosen from its type, choices and metavar (or VALUES below). Flags share a start where they can (two
starts in all) to keep this to seconds; the models folder holds two symlinks to itself, so a scan
that followed them would keep the server from ever coming up."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

import pytest
import requests

from modules import cmd_args
from tests import tiny_models
from tests.app_process import ROOT, AppProcess, free_port

USER, PASSWORD = "flaguser", "flag-pass-words"
GIVEN_BY_THE_TEST = {"--port"}  # AppProcess picks a free one for every start
# The second start: the API alone (--nowebui) over https, on every interface; --lowvram there because it
# cannot be combined with --medvram. Every other flag, including ones added later, goes in the first.
SECOND_START = {"--nowebui", "--tls-keyfile", "--tls-certfile", "--lowvram", "--listen"}
# In every start: where files go (nothing is written to the repository's own folders), and no network.
EVERY_START = ("--models-dir", "--outdir", "--offline")
PREFERRED_CHOICES = {"--device": "cpu", "--precision": "fp32", "--workers": "ray"}
# --workers ray in the first start names a closed port as its cluster: one line, and the jobs run locally.
# With --require-workers that is an exit instead: started on its own (test_require_workers_exits_...).
ON_ITS_OWN = {"--require-workers"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The value of each flag that names a file or folder (or credentials), keyed by flag."""
    root = tmp_path_factory.mktemp("flags")
    build = root / "build"
    folder = tiny_models.make_tiny_sd15(build / "sd15")
    single = tiny_models.make_single_file(folder, build / "sd15.safetensors", sidecar=False)
    models = root / "models"
    sd = models / "Stable-diffusion"
    sd.mkdir(parents=True)
    tiny_models.make_single_file(folder, sd / "in-models-dir.safetensors")  # with its sidecar: loads offline
    os.symlink(".", sd / "loop-a")
    os.symlink(".", sd / "loop-b")
    (root / "ckpt-dir").mkdir()
    shutil.copy(single, root / "ckpt-dir" / "in-ckpt-dir.safetensors")
    (root / "picked").mkdir()
    shutil.copy(single, root / "picked" / "picked-by-ckpt.safetensors")
    (root / "vae-dir").mkdir()
    shutil.copy(folder / "vae" / "diffusion_pytorch_model.safetensors", root / "vae-dir" / "in-vae-dir.safetensors")
    (root / "embeddings-dir").mkdir()
    (root / "auth.txt").write_text(f"{USER}:{PASSWORD}\n")
    (root / "workers.yaml").write_text("min_replicas: 1\nmodels_per_replica: 2\n")
    key, cert = root / "key.pem", root / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return {
        "--models-dir": str(models), "--outdir": str(root / "outputs"), "--ckpt-dir": str(root / "ckpt-dir"),
        "--vae-dir": str(root / "vae-dir"), "--embeddings-dir": str(root / "embeddings-dir"), "--ckpt": str(root / "picked" / "picked-by-ckpt.safetensors"),
        "--gradio-auth-path": str(root / "auth.txt"), "--tls-keyfile": str(key), "--tls-certfile": str(cert),
        "--gradio-auth": f"{USER}:{PASSWORD}", "--api-auth": f"{USER}:{PASSWORD}", "--server-name": "127.0.0.1",
        "--device-id": "0", "--max-pixels": str(256 * 256), "--max-batch": "2", "--max-steps": "20",
        "--ray-address": f"127.0.0.1:{free_port()}", "--workers-config": str(root / "workers.yaml"),
        "--min-replicas": "1", "--max-replicas": "2", "--models-per-replica": "2",
        "settings": str(root / "config.json"), "scratch": str(root),
    }


def flag_name(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def value_for(action: argparse.Action, files: dict[str, str]) -> list[str]:
    """The command-line words that start `action`'s flag with a valid value."""
    flag = flag_name(action)
    if action.nargs == 0:  # store_true and the like
        return [flag]
    if flag in files:
        return [flag, files[flag]]
    if action.choices:
        choices = [str(c) for c in action.choices]
        preferred = PREFERRED_CHOICES.get(flag)
        return [flag, preferred if preferred in choices else next((c for c in choices if c != str(action.default)),
                                                                   choices[0])]
    if action.default not in (None, False):
        return [flag, str(action.default)]  # the default is valid by definition; this checks it parses
    hint = f"{action.metavar or ''} {action.dest}".upper()
    if "USER:PASS" in hint:
        return [flag, f"{USER}:{PASSWORD}"]
    if hint.endswith("_DIR") or " DIR" in hint:
        folder = os.path.join(files["scratch"], action.dest)
        os.makedirs(folder, exist_ok=True)
        return [flag, folder]
    if "FILE" in hint or hint.endswith(("_PATH", "_FILE")):
        path = os.path.join(files["scratch"], action.dest + ".txt")
        with open(path, "w") as f:
            f.write(f"{USER}:{PASSWORD}\n")
        return [flag, path]
    if action.type is int:
        return [flag, "4096"]
    if action.type is float:
        return [flag, "2"]
    if "USER" in hint:
        return [flag, USER]
    return [flag, "127.0.0.1"]  # hosts, addresses, IP lists


def starts(files: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """(flags that exit at once, [the words of each start]) covering every flag of the parser once."""
    exiting, first, second = [], [], []
    for action in cmd_args.build_parser()._actions:
        if not action.option_strings:
            continue
        flag = flag_name(action)
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            exiting.append(flag)
        elif flag not in GIVEN_BY_THE_TEST | ON_ITS_OWN:
            (second if flag in SECOND_START else first).append(value_for(action, files))
    for words in (first, second):
        for flag in EVERY_START:
            if not any(pair[0] == flag for pair in words):
                words.append([flag, files[flag]] if flag in files else [flag])
    return exiting, [[word for pair in words for word in pair] for words in (first, second)]


def test_every_flag_starts_the_server(files):
    exiting, (first, second) = starts(files)
    known = {flag_name(a) for a in cmd_args.build_parser()._actions if a.option_strings}
    assert known == {w for w in first + second if w.startswith("--")} | set(exiting) | GIVEN_BY_THE_TEST | ON_ITS_OWN
    env = {"ZOO_SHARE_PROBE": f"127.0.0.1:{free_port()}",  # --share: a closed local port, no network
           "ZOO_SETTINGS_FILE": files["settings"]}
    auth = (USER, PASSWORD)

    with AppProcess(*first, env=env) as app:  # the UI and the API, with logins
        assert requests.get(app.url + "/", timeout=60).status_code == 200, app.output
        models = requests.get(app.url + "/sdapi/v1/sd-models", auth=auth, timeout=60)
        vaes = requests.get(app.url + "/sdapi/v1/sd-vae", auth=auth, timeout=60)
    assert models.status_code == 200, models.text
    names = {m["model_name"] for m in models.json()}
    assert {"in-models-dir", "in-ckpt-dir", "picked-by-ckpt"} <= names, names
    assert "in-vae-dir.safetensors" in {v["model_name"] for v in vaes.json()}, vaes.text
    assert any("no share tunnel could be reached" in line for line in app.lines)
    assert any(line.startswith("--workers ray: ") and line.endswith("running jobs in this process instead")
               for line in app.lines), app.output
    assert not any("Traceback" in line for line in app.lines), app.output

    # The API alone, over https; its --ckpt names a file that is not there: said in one line, and served.
    missing = os.path.join(files["scratch"], "no-such.safetensors")
    with AppProcess(*second, "--ckpt", missing, env=env) as app:
        https = app.url.replace("http://", "https://")
        answer = requests.get(https + "/sdapi/v1/sd-models", timeout=60, verify=files["--tls-certfile"])
    assert answer.status_code == 200 and "in-models-dir" in {m["model_name"] for m in answer.json()}, answer.text
    assert any(line.startswith("--ckpt: unknown checkpoint") and "no-such.safetensors" in line
               for line in app.lines), app.output
    assert not any("Traceback" in line for line in app.lines), app.output


def test_help_exits_cleanly_and_lists_every_flag(files):
    exiting, _ = starts(files)
    for flag in exiting:
        run = subprocess.run([sys.executable, "webui.py", flag], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("usage: webui.py")
        for action in cmd_args.build_parser()._actions:
            assert flag_name(action) in run.stdout or not action.option_strings


def test_require_workers_exits_when_no_cluster_answers(files):
    run = subprocess.run([sys.executable, "webui.py", "--workers", "ray", "--require-workers", "--ray-address",
                          files["--ray-address"], "--models-dir", files["--models-dir"], "--outdir", files["--outdir"],
                          "--offline"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ZOO_SETTINGS_FILE": files["settings"]})
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith("--workers ray: "), run.stderr
    assert "(--require-workers)" in run.stderr and "Traceback" not in run.stderr
