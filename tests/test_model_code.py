"""No code from model files, ever: a model package whose configs name a module of its own (or any class
that is not diffusers' or transformers' own) is refused by name, and its code never runs.

Every package here carries a .py file that would write a marker file if it were ever imported, and the
module it names is importable (its folder is on the path), as it is in an install where models/ sits
beside webui.py."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import requests
import torch
from safetensors.torch import load_file

from modules.errors import BadModelFile
from modules.models import config_classes, fast_load, loader
from modules.models.registry import CheckpointInfo
from tests import tiny_models
from tests.app_process import AppProcess

REFUSED = "which is not a diffusers or transformers class"
NEVER_RUNS = "the app never runs code from model files"


def _payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\nclass Cls: pass\nclass Pipe: pass\n"


def _edit_json(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


# name -> (how the package is made, what the refusal must say)
CASES = {
    # The package from the issue: a sidecar whose model_index.json names a module beside the checkpoint.
    "sidecar-module.safetensors": ("sidecar", {"scheduler": ["models.Stable-diffusion.some_module", "Cls"]},
                                   ["names class Cls from module models.Stable-diffusion.some_module", REFUSED]),
    "pickle-sidecar.ckpt": ("sidecar", {"scheduler": ["models.Stable-diffusion.some_module", "Cls"]},
                            ["names class Cls from module models.Stable-diffusion.some_module", REFUSED]),
    "folder-module": ("folder", {"scheduler": ["models.Stable-diffusion.some_module", "Cls"]},
                      ["names class Cls from module models.Stable-diffusion.some_module", REFUSED]),
    "dunder-import.safetensors": ("sidecar", {"unet": ["diffusers", "__import__"]},
                                  ["names class __import__ from module diffusers", REFUSED]),
    "dotted-class.safetensors": ("sidecar",
                                 {"text_encoder": ["transformers", "models.Stable-diffusion.some_module.Cls"]},
                                 ["names class models.Stable-diffusion.some_module.Cls from module transformers",
                                  REFUSED]),
    "library-os.safetensors": ("sidecar", {"scheduler": ["os", "system"]}, ["names class system from module os",
                                                                            REFUSED]),
    "not-a-model-class": ("folder", {"tokenizer": ["diffusers", "DiffusionPipeline"]},
                          ["names class DiffusionPipeline from module diffusers", REFUSED]),
    "custom-pipeline": ("folder", {"_class_name": ["some_pipeline", "Pipe"]},
                        ['custom pipeline ["some_pipeline", "Pipe"]', NEVER_RUNS]),
    "unknown-pipeline": ("folder", {"_class_name": "DiffusionPipeline"},
                         ["names pipeline DiffusionPipeline, which is not a Stable Diffusion pipeline"]),
    "component-class-name": ("folder-config", {"_class_name": "Cls"},
                             ["scheduler/scheduler_config.json names class Cls from module diffusers", REFUSED]),
    "code-file": ("folder-code", {}, ["unet/diffusers.py", NEVER_RUNS]),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny SD 1.5 diffusers folder and its single file with sidecar, to copy from."""
    build = tmp_path_factory.mktemp("tiny-build")
    folder = tiny_models.make_tiny_sd15(build / "sd15")
    return folder, tiny_models.make_single_file(folder, build / "sd15.safetensors")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny) -> Path:
    """<root>/models/Stable-diffusion with every case, and <root>/ran (the marker) written by any code that runs."""
    folder, single = tiny
    root = tmp_path_factory.mktemp("hostile")
    sd = root / "models" / "Stable-diffusion"
    sd.mkdir(parents=True)
    marker = root / "ran"
    (sd / "some_module.py").write_text(_payload(marker))
    for name, (kind, changes, _) in CASES.items():
        target = sd / name
        if kind == "sidecar":
            if target.suffix == ".ckpt":
                torch.save(load_file(str(single)), target)
            else:
                shutil.copy(single, target)
            config = tiny_models.sidecar_dir(target)
            shutil.copytree(tiny_models.sidecar_dir(single), config)
            _edit_json(config / "model_index.json", **changes)
            continue
        shutil.copytree(folder, target)
        (target / "some_pipeline.py").write_text(_payload(marker))
        if kind == "folder":
            _edit_json(target / "model_index.json", **changes)
        elif kind == "folder-config":
            _edit_json(target / "scheduler" / "scheduler_config.json", **changes)
        elif kind == "folder-code":
            (target / "unet" / "diffusers.py").write_text(_payload(marker) + "class UNet2DConditionModel: pass\n")
    return root


@pytest.fixture
def importable(hostile, monkeypatch):
    """The packages' own module importable by the name they give, as beside webui.py."""
    monkeypatch.syspath_prepend(str(hostile))
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        monkeypatch.delitem(sys.modules, name)
    return hostile


def test_selecting_any_of_them_through_the_api_is_refused_by_name_and_runs_nothing(hostile):
    flags = ["--nowebui", "--models-dir", str(hostile / "models"), "--outdir", str(hostile / "out"),
             "--skip-load-model-at-start", "--offline"]
    with AppProcess(*flags, env={"PYTHONPATH": str(hostile)}) as app:
        answers = {}
        for name in CASES:
            answers[name] = requests.post(app.url + "/sdapi/v1/txt2img", timeout=120, json={
                "prompt": "a red circle", "width": 64, "height": 64, "steps": 1,
                "override_settings": {"sd_model_checkpoint": name}})
        listed = requests.get(app.url + "/sdapi/v1/sd-models", timeout=30).json()
    assert not (hostile / "ran").exists(), (hostile / "ran").read_text()
    assert listed == []  # none of them is offered
    for name, (_, _, says) in CASES.items():
        assert answers[name].status_code == 422, (name, answers[name].text)
        detail = answers[name].json()["detail"]
        assert detail.startswith(f"override_settings.sd_model_checkpoint: {name}:"), detail
        for words in says:
            assert words in detail, (name, detail)


@pytest.mark.parametrize("name", [n for n, (kind, _, _) in CASES.items() if kind == "sidecar"])
def test_the_loaders_refuse_them_even_when_the_scan_did_not_see_them(importable, name):
    """Files can change between the scan and the load: the loaders check again, on their own."""
    path = importable / "models" / "Stable-diffusion" / name
    info = CheckpointInfo(path=path, name=name, layout="single_file", sidecar_config=tiny_models.sidecar_dir(path),
                          architecture=_sd1())
    with pytest.raises(BadModelFile, match=REFUSED):
        loader.load_pipeline(info, torch.float32, offline=True)
    if path.suffix == ".safetensors":
        with pytest.raises(BadModelFile, match=REFUSED):
            fast_load.load_single_file(path, tiny_models.sidecar_dir(path), torch.float32)
    assert not (importable / "ran").exists()


@pytest.mark.parametrize("name", [n for n, (kind, _, _) in CASES.items() if kind.startswith("folder")])
def test_diffusers_folders_are_refused_at_load_too(importable, name):
    path = importable / "models" / "Stable-diffusion" / name
    info = CheckpointInfo(path=path, name=name, layout="diffusers", architecture=_sd1())
    with pytest.raises(BadModelFile) as refused:
        loader.load_pipeline(info, torch.float32, offline=True)
    for words in CASES[name][2]:
        assert words in str(refused.value)
    assert not (importable / "ran").exists()


def test_real_model_indexes_pass(tiny):
    """What diffusers itself writes for SD 1.x, safety checker and feature extractor included."""
    folder, single = tiny
    index = config_classes.check_model_index(folder, folder)
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    for library, class_name in [("stable_diffusion", "StableDiffusionSafetyChecker"),
                                ("transformers", "CLIPImageProcessor"), ("transformers", "CLIPTokenizer"),
                                ("transformers", "CLIPFeatureExtractor"),  # older folders' name for it
                                ("diffusers", "EulerAncestralDiscreteScheduler"), ("transformers", "CLIPTextModel")]:
        found = config_classes.component_class(library, class_name, folder, "test")
        assert found.__module__.split(".")[0] in ("diffusers", "transformers")


@pytest.mark.parametrize("library,class_name", [
    ("diffusers", "__import__"), ("diffusers", "utils"), ("transformers", "os"), ("diffusers", "os.system"),
    ("builtins", "eval"), ("os", "system"), ("diffusers", "DiffusionPipeline"), ("transformers", "AutoModel"),
    ("diffusers.utils", "deprecate"), (None, "Cls"), ("diffusers", None), (["diffusers"], "AutoencoderKL"),
    ("diffusers", "AutoModel"), ("transformers", "AutoTokenizer"), ("transformers", "PreTrainedModel"),
])
def test_names_outside_the_allowlist_are_refused(library, class_name, tmp_path):
    with pytest.raises(BadModelFile, match=REFUSED):
        config_classes.component_class(library, class_name, tmp_path / "m.safetensors", "model_index.json")


def _sd1():
    from modules.models.detect import Architecture

    return Architecture("sd1")
