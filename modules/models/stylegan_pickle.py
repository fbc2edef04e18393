"""Reading NVIDIA's StyleGAN2-ADA-pytorch and StyleGAN3 network pickles without running any of their code.

Those files are `pickle.dump(dict(G=..., D=..., G_ema=..., ...))` of torch modules whose classes were made
"persistent": each module pickles as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, where
`meta` holds the module's Python source (`module_src`), its class name, and its state (the module's
`__dict__`: `_parameters`, `_buffers`, `_modules`, `_init_kwargs`, ...). NVIDIA's loader `exec`s that
source. Here:

- every global the pickle names is checked against ALLOWED before anything is unpickled (a scan of the
  opcodes), and again by `find_class`; anything else refuses the whole file by name;
- `_reconstruct_persistent_obj` is our `PersistentObject`: it keeps the class name, the init arguments,
  the state and the sha256 of `module_src`. The source is never compiled, imported or executed;
- tensor storages (`torch.storage._load_from_bytes`, a nested `torch.save` of the storage) are read with
  `torch.load(..., weights_only=True)`, torch's own restricted unpickler; a torch zip file's storages
  (the `persistent_load` form, if someone `torch.save`d a network) are read as raw bytes;
- numpy scalars, dtypes and arrays are rebuilt for numeric dtypes only (object arrays are refused),
  under both numpy 1.x (`numpy.core`) and numpy 2.x (`numpy._core`) names;
- `dnnlib.util.EasyDict` becomes our plain dict subclass.

The TensorFlow-era StyleGAN2 pickles (`dnnlib.tflib.network.Network`) are refused with their own message.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import re
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from modules.errors import BadModelFile

MAX_PICKLE_BYTES = 4 * 2**30  # NVIDIA's largest StyleGAN3 snapshots with D are about 1 GB
NUMERIC_DTYPE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16))$")
NOT_RUN = "nothing in it was run"
TF_ERA = ("a TensorFlow-era StyleGAN pickle (dnnlib.tflib.network.Network): only the PyTorch pickles of "
          "StyleGAN2-ADA-pytorch and StyleGAN3 can be opened")


class EasyDict(dict):
    """What NVIDIA's `dnnlib.util.EasyDict` (a dict with attribute access) becomes: a plain dict."""


@dataclass
class PersistentObject:
    """A persistent NVIDIA module as data: what `_reconstruct_persistent_obj` would have built, never built."""
    class_name: str
    init_args: tuple
    init_kwargs: dict
    state: dict
    module_src_sha256: str
    children: dict = field(default_factory=dict)  # name -> PersistentObject (the state's `_modules`)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers by their dotted names, as `state_dict()` would give them."""
        out: dict[str, torch.Tensor] = {}
        skipped = set(self.state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for name, value in dict(self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor) and name not in skipped:
                    out[prefix + str(name)] = value
        for name, child in dict(self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{name}."))
        return out


def _persistent_object(meta) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str) \
            or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("a persistent object without class_name and state")
    state = meta["state"]
    source = meta.get("module_src")
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest() if isinstance(source, str) else ""
    kwargs = state.get("_init_kwargs")
    args = state.get("_init_args")
    return PersistentObject(meta["class_name"], tuple(args) if isinstance(args, (list, tuple)) else (),
                            dict(kwargs) if isinstance(kwargs, dict) else {}, state, digest)


def _storage_from_bytes(data):
    """A storage from the nested torch.save bytes of `torch.storage._load_from_bytes`, weights only."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage bytes are not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation: this is how these files store tensors
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise pickle.UnpicklingError("storage bytes hold something other than a storage")
    return storage


def _tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise pickle.UnpicklingError("a tensor without a storage")
    if not (isinstance(offset, int) and offset >= 0 and all(isinstance(v, int) and v >= 0 for v in (*size, *stride))
            and len(size) == len(stride)):
        raise pickle.UnpicklingError("a tensor with a bad size or stride")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._utils._rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False, OrderedDict())


def _parameter(data, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data


def _numpy_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str) or not NUMERIC_DTYPE.match(spec):
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not a plain number type")
    return np.dtype(spec)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("a numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype)[0]


class _NumpyArray(np.ndarray):
    """Only a marker: `_reconstruct(numpy.ndarray, ...)` may name ndarray and nothing else."""


def _numpy_array(cls, shape, typecode):
    if cls is not _NumpyArray:
        raise pickle.UnpicklingError("numpy _reconstruct of something other than an ndarray")
    # An empty uint8 array; the pickle's BUILD then sets its shape, numeric dtype (ours) and bytes.
    return np.ndarray((0,), dtype=np.uint8)


def _latin1_bytes(text, encoding="latin1"):
    """Protocol 2 writes bytes as _codecs.encode(text, "latin1") (torch.save's default protocol)."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode of something other than latin-1 text")
    return text.encode("latin1")


_NUMPY = {"scalar": _numpy_scalar, "_reconstruct": _numpy_array}
STORAGE_TYPES = {f"{name}Storage": dtype for name, dtype in (
    ("Float", torch.float32), ("Double", torch.float64), ("Half", torch.float16), ("BFloat16", torch.bfloat16),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
    ("Byte", torch.uint8), ("Bool", torch.bool))}

ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,  # protocol 2-3 pickles (Python 3.7's default) write sets as set([...])
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): _NumpyArray,
    **{(module, name): function for module in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, function in _NUMPY.items()},
    **{("torch", name): name for name in STORAGE_TYPES},  # a storage type names its dtype (persistent_load)
}


def _canonical(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (protocol 2 writes __builtin__.set) as Python 3's, the way pickle maps them itself."""
    import _compat_pickle
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _refusal(path: Path, module: str, name: str) -> BadModelFile:
    if module.startswith("dnnlib.tflib"):
        return BadModelFile(path, f"refused: {TF_ERA}; {NOT_RUN}")
    return BadModelFile(path, f"refused: the pickle names {module}.{name}, which a StyleGAN network file does not "
                              f"need (it could run code); {NOT_RUN}")


def named_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) the pickle's opcodes name, found without unpickling anything."""
    found, pushed, memo = [], [], {}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            if not (isinstance(module, str) and isinstance(attr, str)):
                found.append(("?", "a global built at load time"))
            else:
                found.append((module, attr))
            pushed.append(None)
        elif name in ("EXT1", "EXT2", "EXT4"):
            found.append(("copyreg", "extension registry"))
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif "UNICODE" in name or name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
            pushed.append(arg if isinstance(arg, str) else None)
        elif name not in ("FRAME", "PROTO", "STOP"):
            pushed.append(None)
        if len(pushed) > 64:
            del pushed[:-8]
    return found


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, storages=None):
        super().__init__(file)
        self.path = path
        self.storages = storages  # key -> bytes loader, for a torch zip file's persistent ids

    def find_class(self, module, name):
        allowed = ALLOWED.get(_canonical(module, name))
        if allowed is None:
            raise _refusal(self.path, module, name)
        return allowed

    def persistent_load(self, pid):
        # torch.save's form: ('storage', <storage type>, key, location, numel); the bytes are in the zip.
        if self.storages is None or not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                                         and pid[1] in STORAGE_TYPES and isinstance(pid[2], str)):
            raise pickle.UnpicklingError("a persistent id that is not a tensor storage")
        dtype = STORAGE_TYPES[pid[1]]
        raw = self.storages(pid[2])
        storage = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)


def _check_globals(path: Path, data) -> None:
    for module, name in named_globals(data):
        if _canonical(module, name) not in ALLOWED:
            raise _refusal(path, module, name)


def check_network_pickle(path: str | Path) -> None:
    """Refuse a file whose pickle names anything outside ALLOWED, reading its opcodes as a stream (a folder
    scan; nothing is unpickled). A torch zip file's data.pkl is checked the same way."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
                if len(pickles) != 1:
                    raise BadModelFile(path, "refused: a zip file that is not a torch.save file")
                _check_globals(path, archive.read(pickles[0]))
            return
        with open(path, "rb") as f:
            _check_globals(path, f)
    except BadModelFile:
        raise
    except OSError as e:
        raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - not a pickle at all
        raise BadModelFile(path, f"refused: not a readable network pickle ({type(e).__name__}); {NOT_RUN}") from None


def load_network_pickle(path: str | Path):
    """The unpickled top-level object of a StyleGAN network file (`dict(G=..., G_ema=..., ...)` with
    PersistentObjects for the modules). BadModelFile naming the file for anything else."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise BadModelFile(path, f"{size} bytes is over the {MAX_PICKLE_BYTES >> 30} GiB limit for a network pickle")
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        data = path.read_bytes()
    except OSError as e:
        raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from None
    return _unpickle(path, data)


def _unpickle(path: Path, data: bytes, storages=None):
    try:
        _check_globals(path, data)
        return _Unpickler(io.BytesIO(data), path, storages).load()
    except BadModelFile:
        raise
    except Exception as e:  # noqa: BLE001 - every unpickling failure is a refusal naming the file
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise BadModelFile(path, f"refused: not a readable StyleGAN network pickle ({detail}); {NOT_RUN}") from None


def _load_zip(path: Path):
    """A `torch.save`d network: <archive>/data.pkl plus one raw file per storage."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise BadModelFile(path, "refused: a zip file that is not a torch.save file")
        root = pickles[0][: -len("data.pkl")]
        data = archive.read(pickles[0])

        def storage_bytes(key: str) -> bytes:
            if not re.fullmatch(r"\w+", key) or root + "data/" + key not in names:
                raise pickle.UnpicklingError(f"storage {key!r} is not in the file")
            return archive.read(root + "data/" + key)

        return _unpickle(path, data, storage_bytes)


def generator_of(path: str | Path, network: object) -> tuple[PersistentObject, str]:
    """The generator to sample from: `G_ema` when the file has it (the one NVIDIA's tools use), else `G`."""
    if not isinstance(network, dict):
        raise BadModelFile(path, "not a StyleGAN network pickle (expected a dict with G_ema or G)")
    for key in ("G_ema", "G"):
        if isinstance(network.get(key), PersistentObject):
            return network[key], key
    raise BadModelFile(path, "not a StyleGAN network pickle: it has no G_ema or G network")
