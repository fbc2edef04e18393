"""NVIDIA-format StyleGAN network pickles, written at test time from our converted weights (tests/data/stylegan),
so that no NVIDIA source is committed.

The files have the structure of NVIDIA's training snapshots: `pickle.dump(dict(training_set_kwargs=..., G=...,
D=None, G_ema=..., augment_pipe=None))`, where every module is a persistent object,
`torch_utils.persistence._reconstruct_persistent_obj(dict(type="class", version=6, module_src=<source>,
class_name=<name>, state=<the module's __dict__>))`, with `_init_args`/`_init_kwargs` in the state, the
init kwargs holding a `dnnlib.util.EasyDict` and numpy scalars, parameters through `torch._utils._rebuild_parameter`
and tensor storages through `torch.storage._load_from_bytes` (a nested torch.save). `module_src` here is a
placeholder (or a payload, for the refusal tests): our reader never runs it either way.

The globals NVIDIA's modules would be found under (`torch_utils.persistence`, `dnnlib.util`) are stand-ins
registered in sys.modules only while a file is written."""
from __future__ import annotations

import contextlib
import io
import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data" / "stylegan"
NETWORKS = ("sg2", "sg2c", "sg3t", "sg3r")
PLACEHOLDER_SOURCE = "# the module source NVIDIA's pickles carry (their loader execs it; ours never does)\n"


def nvidia_outputs(name: str) -> dict[str, np.ndarray]:
    """What NVIDIA's official code produced for the network (made once outside the repository)."""
    from safetensors.numpy import load_file
    return load_file(str(DATA / f"{name}_nvidia_outputs.safetensors"))


def nvidia_init_kwargs(name: str) -> dict:
    from safetensors import safe_open
    with safe_open(str(DATA / f"{name}_nvidia_outputs.safetensors"), "np") as f:
        return json.loads(f.metadata()["init_kwargs"])


@contextlib.contextmanager
def _stand_in_modules():
    """`torch_utils.persistence._reconstruct_persistent_obj` and `dnnlib.util.EasyDict`, for pickle to name."""
    def _reconstruct_persistent_obj(meta):  # never called: these files are only written here
        raise AssertionError("not for loading")

    class EasyDict(dict):
        pass

    made = {}
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        made[name] = types.ModuleType(name)
    made["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__ = \
        "torch_utils.persistence", "_reconstruct_persistent_obj"
    made["dnnlib.util"].EasyDict = EasyDict
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    saved = {name: sys.modules.get(name) for name in made}
    sys.modules.update(made)
    try:
        yield made
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _NvidiaPickler(pickle.Pickler):
    """Pickles each torch module as NVIDIA's persistence does; everything else as plain pickle."""

    def __init__(self, file, top_kwargs: dict, module_src: str, protocol: int, stand_ins):
        super().__init__(file, protocol=protocol)
        self.top_kwargs, self.module_src, self.stand_ins = top_kwargs, module_src, stand_ins

    def reducer_override(self, obj):
        if not isinstance(obj, torch.nn.Module):
            return NotImplemented
        top = hasattr(obj, "config")
        state = {key: obj.__dict__[key] for key in ("training", "_parameters", "_buffers", "_modules",
                                                    "_non_persistent_buffers_set") if key in obj.__dict__}
        state["_parameters"] = dict(state["_parameters"])
        state["_init_args"] = ()
        state["_init_kwargs"] = self.top_kwargs if top else {}
        if top:
            state.update(z_dim=obj.z_dim, c_dim=obj.c_dim, w_dim=obj.w_dim, num_ws=obj.num_ws)
        if hasattr(obj, "out_size"):  # StyleGAN3 layers keep numpy sizes and cutoffs in their __dict__
            state.update(in_size=np.broadcast_to(np.asarray(obj.out_size), [2]), out_cutoff=np.float64(2.5))
        meta = dict(type="class", version=6, module_src=self.module_src,
                    class_name="Generator" if top else type(obj).__name__, state=state)
        return self.stand_ins["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


def write_nvidia_pickle(path: Path, name: str, module_src: str = PLACEHOLDER_SOURCE, extra: dict | None = None,
                        numpy_1: bool = False, without_g_ema: bool = False, zip_form: bool = False) -> Path:
    """An NVIDIA-format snapshot of network `name` (G_ema = the reference weights; G = a perturbed copy, so a
    reader that picks G instead of G_ema shows). `numpy_1`: numpy scalars named as numpy 1.x wrote them
    (`numpy.core.multiarray`). `zip_form`: written by torch.save instead of pickle.dump."""
    from modules.models.stylegan_files import read_converted_generator
    g_ema = read_converted_generator(DATA / f"{name}.safetensors")
    g = read_converted_generator(DATA / f"{name}.safetensors")
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.5)
    with _stand_in_modules() as stand_ins:
        kwargs = nvidia_init_kwargs(name)
        kwargs["mapping_kwargs"] = stand_ins["dnnlib.util"].EasyDict(kwargs["mapping_kwargs"])
        kwargs["magnitude_ema_beta"] = np.float64(0.999)  # a numpy scalar (training only: ignored)
        data = dict(training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="data.zip",
                                             resolution=np.int64(g.img_resolution)),
                    G=g, D=None, G_ema=g_ema, augment_pipe=None, **(extra or {}))
        if without_g_ema:
            del data["G_ema"]
        if zip_form:
            class ZipPickler(_NvidiaPickler):
                def __init__(self, f, protocol=2):
                    super().__init__(f, kwargs, module_src, protocol, stand_ins)

            torch.save(data, path, pickle_module=types.SimpleNamespace(__name__="pickle", Pickler=ZipPickler))
            return path
        buffer = io.BytesIO()
        _NvidiaPickler(buffer, kwargs, module_src, 3 if numpy_1 else 4, stand_ins).dump(data)
    raw = buffer.getvalue()
    if numpy_1:  # protocol 3 names globals as text lines, so the rename needs no length fix-up
        assert b"numpy._core.multiarray\n" in raw
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(raw)
    return path


def payload_pickle(marker: Path) -> bytes:
    """A pickle whose loading runs a shell command that creates `marker`."""
    import os

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    return pickle.dumps(Payload(), protocol=2)
