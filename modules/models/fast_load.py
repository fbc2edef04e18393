"""Cold loads of single-file (.safetensors, original LDM layout) Stable Diffusion checkpoints.

What `Pipeline.from_single_file` does, with each weight byte read once, straight into place:

1. Read the header only, and build every model on the meta device from the sidecar
   config folder (no weights allocated, no random init).
2. Dry-run diffusers' own key converters (`single_file_utils.convert_ldm_*`) on meta
   tensors shaped like the file's, tracing which file tensors each model weight comes
   from. Missing or misshapen weights fail here, before a byte of data is read; file
   tensors that no weight comes from (EMA copies, `model_ema.*`, unused keys) are never read.
3. Per model, read the needed byte ranges into one preallocated host buffer
   (parallel_read: adjacent ranges coalesced, parallel chunked preadv). Weights are
   zero-copy views of it. Tensors that must be copied anyway (dtype conversion, OpenCLIP's
   fused q/k/v split) go to a second, short-lived buffer, so no dead bytes stay pinned.
   One buffer per model, so a model dropped later (e.g. a VAE shared with another
   pipeline) frees its memory.
4. Run the converters for real and `load_state_dict(strict=True, assign=True)`: the
   parameters become the buffer views; there is no second copy.
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from modules.compat import is_alias_of, own_buffers, tree_flatten
from modules.errors import BadModelFile
from modules.models import config_classes, families, parallel_read
from modules.models.families import Family
from modules.models.safetensors_header import read_header
from modules.models.skeletons import KEY_ATTRIBUTE, SkeletonPool, skeleton_key

READERS = ("auto", "parallel", "plain")
# A reader other than these (the benchmark's comparison ones, bench/readers.py) is a TensorReader:
# (path, header, data start, names kept, names passing, report) -> {name: tensor in its file dtype}.
TensorReader = Callable[[Path, dict, int, list, list, "LoadReport"], dict]

# reader="auto": bench/cold_load.py on the dev VM (2 vCPU Xeon, 24 GiB, virtio disk, shared
# with other jobs: load average 3-7, so +-30% noise), 2.13 GB SD 1.5 fp16 file, medians:
#   page cache warm     cold load   parallel 1.37 s   plain 1.49 s   mmap* 2.09 s  (raw read 1.28 s)
#   page cache evicted  raw read    parallel 2.20 s   plain 4.61 s
#                       cold load   parallel 3.81 s   plain 4.68 s
# Several reads in flight keep the disk busy; from the page cache the readers tie (the cost
# there is faulting in fresh anonymous pages, not the copy). map* skipped the copy: 0.37 s warm,
# 1.85 s evicted, but leaves the weights file-backed. (* bench/readers.py: comparison only, never the app's.)
AUTO_READER = "parallel"

FILE_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64,
    "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


@dataclass
class LoadReport:
    reader: str
    seconds: float = 0.0
    read_seconds: float = 0.0
    bytes_read: int = 0  # file bytes read (the needed tensors only)
    buffer_bytes: int = 0  # host buffers allocated for them (bytes read + alignment padding)
    tensors_in_file: int = 0
    tensors_read: int = 0
    skeletons_reused: list[str] = field(default_factory=list)  # components built by an earlier load


@dataclass
class ColdLoad:
    pipeline: Any
    report: LoadReport


def load_single_file(path: Path, config_dir: Path, dtype: torch.dtype, reader: str | TensorReader = "auto"):
    """The pipeline named by `config_dir/model_index.json` with the weights of the
    original-layout .safetensors `path`, in `dtype`, on the CPU. Its weights equal
    `Pipeline.from_single_file(path, config=config_dir, local_files_only=True, dtype=dtype)`'s.

    `reader`: "parallel" (threaded preadv into preallocated buffers), "plain" (one
    sequential read per range), "auto" (the fastest of those measured here), or a
    TensorReader (the benchmark's comparisons, bench/readers.py). Raises BadModelFile naming the file."""
    return load_single_file_with_report(path, config_dir, dtype, reader).pipeline


def load_single_file_with_report(path: Path, config_dir: Path, dtype: torch.dtype, reader: str | TensorReader = "auto",
                                 pipeline_class: type | None = None, skeletons: SkeletonPool | None = None,
                                 family: Family | None = None,
                                 component_files: dict[str, tuple[Path, str]] | None = None,
                                 prebuilt: dict[str, torch.nn.Module] | None = None, shapes: dict | None = None,
                                 keep_fp8: tuple[str, ...] = ()) -> ColdLoad:
    """As load_single_file, with what the load cost. `pipeline_class` overrides model_index's.
    With `skeletons`, a model of an architecture built before is not built again but taken from there.
    `family` (which converts the file's tensors, and which components are never loaded) is found
    from the header when not given. `component_files`: {component: (file, prefix)} for components the
    file lacks (a transformer-only FLUX file's VAE and text encoders): each file's tensors are read as if
    they stood under `prefix` in a whole checkpoint, so the family's converters apply unchanged; an optional
    component neither the file nor a component file has (SD3's T5) is left out. `prebuilt`: components built elsewhere (a GGUF transformer, gguf_files.py), taken
    as they are; with them and `shapes` (its tensors' shapes), a `path` that is no .safetensors file is not
    read here. `keep_fp8`: components whose fp8 file tensors stay fp8 (an fp8 file's denoiser, kept in fp8:
    fp8_storage.py), not converted to `dtype`."""
    started = time.perf_counter()
    path, config_dir = Path(path), Path(config_dir)
    if callable(reader):
        read, report = reader, LoadReport(reader=reader.__name__)
    elif reader in READERS:
        read, report = read_tensors, LoadReport(reader=AUTO_READER if reader == "auto" else reader)
    else:
        raise ValueError(f"unknown reader {reader!r}; expected one of {READERS}")
    prebuilt = dict(prebuilt or {})
    if prebuilt and shapes is not None:
        main = None
    else:
        main = _Source.read(path)
        shapes = {name: info["shape"] for name, info in main.header.items()}
    report.tensors_in_file = len(shapes)
    if family is None:
        family = families.recognise_header(shapes)
        if family is None:
            raise BadModelFile(path, f"is not a checkpoint of a supported family ({', '.join(families.labels())})")
    cls, components, init_kwargs = _pipeline_recipe(path, config_dir, pipeline_class)
    sources = {name: _Source.read(file, prefix) for name, (file, prefix) in (component_files or {}).items()}
    in_file = family.components_in_file(shapes) if family.components_in_file is not None else set(components)
    # Not loaded: what the app never runs (as with its from_single_file call), and optional components that
    # neither the file nor a component file holds.
    omitted = set(family.skipped_components) | {n for n in family.optional_components
                                                if n not in in_file and n not in sources}

    models = {name: _Model.build(path, config_dir, name, library, class_name, dtype, skeletons, report, family,
                                 _source_of(path, name, sources, main), keep_fp8=name in keep_fp8)
              for name, (library, class_name) in components.items()
              if name not in omitted and name not in prebuilt and library in ("diffusers", "transformers")
              and _is_model_class(path, library, class_name)}
    missing = {name: model.trace() for name, model in models.items()}
    if any(missing.values()):
        parts = [f"{len(keys)} {name} weight{'s' if len(keys) > 1 else ''} (e.g. {', '.join(keys[:3])})"
                 for name, keys in missing.items() if keys]
        raise BadModelFile(path, f"is missing {' and '.join(parts)}: damaged, or not a checkpoint of the "
                                 f"architecture its config {config_dir.name} describes")

    for model in models.values():
        model.load(dtype, report, read)

    loaded: dict[str, Any] = {}
    for name, (library, class_name) in components.items():
        if name in models:
            loaded[name] = models[name].module
        elif name in prebuilt:
            loaded[name] = prebuilt[name]
        elif library is None or name in omitted:
            loaded[name] = None
        else:
            loaded[name] = _load_config_only(path, config_dir, name, library, class_name)
    try:
        pipe = cls(**loaded, **init_kwargs)
    except (TypeError, ValueError) as e:
        raise BadModelFile(path, f"config {config_dir.name} does not make a {cls.__name__}: {e}") from e
    report.seconds = time.perf_counter() - started
    return ColdLoad(pipe, report)


# ---------------------------------------------------------------- file and config


def _source_of(path: Path, name: str, sources: dict, main: "_Source | None") -> "_Source":
    source = sources.get(name, main)
    if source is None:
        raise BadModelFile(path, f"holds no {name} weights: pick a component file for it")
    return source


def _read_safetensors_header(path: Path) -> tuple[dict[str, dict], int]:
    if path.suffix.lower() != ".safetensors":
        raise BadModelFile(path, "fast loading reads .safetensors files only")
    header, _ = read_header(path)  # validates every tensor's offsets against the file size
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
    for name, info in header.items():
        if info["dtype"] not in FILE_DTYPES:
            raise BadModelFile(path, f"tensor {name!r} has dtype {info['dtype']}, which torch cannot hold")
    return header, 8 + header_size


def _pipeline_recipe(path: Path, config_dir: Path, pipeline_class: type | None):
    """(pipeline class, {component: (library, class name)}, other init kwargs) from model_index.json.
    Every class it names is checked first: only diffusers' and transformers' own are ever used."""
    index = config_classes.check_model_index(config_dir, path)
    cls = pipeline_class or config_classes.pipeline_class(index, path)
    expected_modules, optional_kwargs = cls._get_signature_keys(cls)
    init_dict, _, _ = cls.extract_init_dict(dict(index))
    components = {k: tuple(v) for k, v in init_dict.items()
                  if k in expected_modules and isinstance(v, (list, tuple)) and len(v) == 2}
    for name in expected_modules - components.keys():
        if name not in cls._optional_components:
            raise BadModelFile(path, f"config does not say how to build the pipeline's {name}")
        components[name] = (None, None)
    init_kwargs = {k: v for k, v in init_dict.items() if k in optional_kwargs}
    if "requires_safety_checker" in optional_kwargs:
        init_kwargs["requires_safety_checker"] = False  # no safety checker is loaded
    return cls, components, init_kwargs


def _library_class(path: Path, library: str, class_name: str):
    """Looked up on diffusers or transformers by name; nothing is imported by a name from the config."""
    return config_classes.component_class(library, class_name, path, "model_index.json")


def _is_model_class(path: Path, library: str, class_name: str) -> bool:
    return issubclass(_library_class(path, library, class_name), torch.nn.Module)


def _load_config_only(path: Path, config_dir: Path, name: str, library: str, class_name: str):
    """Schedulers and tokenizers come from the config folder alone."""
    cls = _library_class(path, library, class_name)
    try:
        if library == "transformers":  # tokenizers; 5.x CLIPTokenizer wants the folder itself
            return cls.from_pretrained(str(config_dir / name))
        return cls.from_pretrained(str(config_dir), subfolder=name)
    except (OSError, ValueError, TypeError) as e:
        raise BadModelFile(path, f"cannot load its {name} from {config_dir}: {_first_line(e)}") from e


# ---------------------------------------------------------------- one model


@dataclass
class _Source:
    """One safetensors file the weights come from: its header (names under `prefix`), where its data starts,
    meta stand-ins for its tensors, and the tensors read from it so far that stay as views."""
    path: Path
    header: dict[str, dict]
    data_start: int
    file_tensors: dict[str, torch.Tensor]
    zero_copy_read: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, prefix: str = "") -> "_Source":
        header, data_start = _read_safetensors_header(Path(path))
        header = {prefix + name: info for name, info in header.items()}
        tensors = {name: torch.empty(info["shape"], dtype=FILE_DTYPES[info["dtype"]], device="meta")
                   for name, info in header.items()}
        return cls(Path(path), header, data_start, tensors)


@dataclass
class _Model:
    name: str  # pipeline component: unet, vae, text_encoder, text_encoder_2
    module: torch.nn.Module  # on the meta device until loaded
    convert: Callable[[dict], dict]  # original-layout checkpoint -> this model's state dict
    source: _Source  # the file its weights are in
    expected: dict[str, torch.Tensor] = field(default_factory=dict)  # its state dict (meta)
    sources: set[str] = field(default_factory=set)  # file tensors its weights come from
    zero_copy: set[str] = field(default_factory=set)  # ... that end up as weights unchanged
    keep_fp8: bool = False  # fp8 file tensors stay fp8 (an fp8 file's denoiser)

    @classmethod
    def build(cls, path: Path, config_dir: Path, name: str, library: str, class_name: str, dtype: torch.dtype,
              skeletons: SkeletonPool | None, report: LoadReport, family: Family, source: _Source,
              keep_fp8: bool = False) -> "_Model":
        from accelerate import init_empty_weights
        from transformers.initialization import no_init_weights

        model_class = _library_class(path, library, class_name)
        converter = family.converters.get(name)
        if converter is None:
            raise BadModelFile(path, f"its config names a {name} ({class_name}), which {family.label} single "
                                     "files do not have: not a checkpoint of the architecture its config describes")
        try:
            if library == "diffusers":
                config = model_class.load_config(str(config_dir), subfolder=name)
                key = skeleton_key(f"{library}.{class_name}", dict(config), dtype)
            else:
                config = model_class.config_class.from_pretrained(str(config_dir), subfolder=name)
                key = skeleton_key(f"{library}.{class_name}", config.to_dict(), dtype)
            module = skeletons.take(key) if skeletons is not None and not keep_fp8 else None
            if module is not None:
                report.skeletons_reused.append(name)
            elif library == "diffusers":
                with init_empty_weights():  # buffers stay real: non-persistent ones keep their values
                    module = model_class.from_config(config)
            else:
                # no_init_weights: the random init is overwritten anyway (and is 0.1 s even on meta).
                with init_empty_weights(), no_init_weights():
                    module = model_class(config)
        except (OSError, ValueError, TypeError) as e:
            raise BadModelFile(path, f"cannot build its {name} from {config_dir}: {_first_line(e)}") from e
        if not keep_fp8:  # a module whose layers will carry fp8 casting hooks is never reused as a skeleton
            setattr(module, KEY_ATTRIBUTE, key)
        convert = lambda checkpoint: converter(module, config, checkpoint)  # noqa: E731
        return cls(name, module, convert, source, keep_fp8=keep_fp8)

    def trace(self) -> list[str]:
        """Dry-run the converter on meta tensors: which file tensors make which weights.
        Returns the weights the file lacks."""
        path, file_tensors = self.source.path, self.source.file_tensors
        self.expected = self.module.state_dict()
        origin = {id(t): frozenset((name,)) for name, t in file_tensors.items()}
        with _Lineage(origin):
            state = self._convert(path, dict(file_tensors))
        missing = [k for k in self.expected if state.get(k) is None]
        if missing:
            return missing
        for key, want in self.expected.items():
            got = state[key]
            if tuple(got.shape) != tuple(want.shape):
                raise BadModelFile(path, f"{self.name} weight {key} has shape {list(got.shape)}, "
                                         f"its config expects {list(want.shape)}")
        for key in self.expected:
            got = state[key]
            for name in origin.get(id(got), frozenset()):
                self.sources.add(name)
                if is_alias_of(got, file_tensors[name]):
                    self.zero_copy.add(name)
        return []

    def load(self, dtype: torch.dtype, report: LoadReport, read: TensorReader) -> None:
        path, header, data_start = self.source.path, self.source.header, self.source.data_start
        file_tensors, zero_copy_read = self.source.file_tensors, self.source.zero_copy_read

        def needs_copy(name: str) -> bool:
            return name not in self.zero_copy or self._converted(file_tensors[name], dtype)

        todo = sorted(n for n in self.sources if n not in zero_copy_read)
        kept = [n for n in todo if not needs_copy(n)]
        passing = [n for n in todo if needs_copy(n)]  # read, converted or split, then freed
        started = time.perf_counter()
        tensors = read(path, header, data_start, kept, passing, report)
        report.read_seconds += time.perf_counter() - started
        zero_copy_read.update({n: tensors[n] for n in kept})
        for name in passing:
            if self._converted(tensors[name], dtype):
                tensors[name] = tensors[name].to(dtype)

        checkpoint = dict(file_tensors)  # meta stand-ins for everything not read
        checkpoint.update({n: zero_copy_read[n] for n in self.sources if n in zero_copy_read})
        checkpoint.update({n: tensors[n] for n in passing})
        del tensors
        state = self._convert(path, checkpoint)
        del checkpoint
        state = {k: state[k] for k in self.expected}
        for key, value in state.items():
            if value.is_meta:  # the trace missed a source: a bug here, not in the file
                raise RuntimeError(f"fast load of {path.name}: {self.name}.{key} was not read")
            if self._converted(value, dtype):
                state[key] = value.to(dtype)
        self.module.load_state_dict(state, strict=True, assign=True)
        if hasattr(self.module, "tie_weights"):  # T5's shared / encoder.embed_tokens: one weight again, as loaded
            self.module.tie_weights()
        _cast_floating_buffers(self.module, dtype)  # as from_single_file's model.to(dtype) does
        self.module.eval()
        left = [n for n, t in list(self.module.named_parameters()) + list(self.module.named_buffers()) if t.is_meta]
        if left:
            raise RuntimeError(f"fast load of {path.name}: {self.name} still has meta tensors {left[:3]}")

    def _converted(self, tensor: torch.Tensor, dtype: torch.dtype) -> bool:
        """Whether a file tensor is converted to the load dtype (fp8 ones stay fp8 with keep_fp8)."""
        if not tensor.is_floating_point() or tensor.dtype == dtype:
            return False
        return not (self.keep_fp8 and tensor.dtype in FP8_DTYPES)

    def _convert(self, path: Path, checkpoint: dict) -> dict:
        try:
            return self.convert(checkpoint)
        except BadModelFile:
            raise
        except (KeyError, ValueError, IndexError, RuntimeError) as e:
            raise BadModelFile(path, f"its {self.name} weights cannot be converted "
                                     f"({type(e).__name__}: {_first_line(e)})") from e


def _cast_floating_buffers(module: torch.nn.Module, dtype: torch.dtype) -> None:
    for owner in module.modules():
        buffers = own_buffers(owner)
        for name, buffer in buffers.items():
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != dtype:
                buffers[name] = buffer.to(dtype)


class _Lineage(TorchFunctionMode):
    """Records, for every tensor made while active, the file tensors it was made from."""

    def __init__(self, origin: dict[int, frozenset[str]]):
        super().__init__()
        self.origin = origin
        self._alive: list = []  # keeps results alive so their ids are not reused

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        inputs, _ = tree_flatten((args, kwargs))
        names = frozenset().union(*(self.origin.get(id(t), ()) for t in inputs if isinstance(t, torch.Tensor)))
        if names:
            outputs, _ = tree_flatten(result)
            for t in outputs:
                if isinstance(t, torch.Tensor):
                    self.origin[id(t)] = self.origin.get(id(t), frozenset()) | names
                    self._alive.append(t)
        return result


# ---------------------------------------------------------------- reading


def read_tensors(path: Path, header: dict[str, dict], data_start: int, kept: list[str], passing: list[str],
                 report: LoadReport, fill: Callable[[Path, list], int] | None = None) -> dict[str, torch.Tensor]:
    """The named file tensors, in their file dtype. `kept` ones share one buffer that lives
    as long as they do; `passing` ones share another. `fill(path, [(plan, buffer, names)])` reads
    the bytes into the buffers and returns how many (default: parallel_read with report.reader)."""
    if not kept and not passing:
        return {}
    jobs = []
    for names in (kept, passing):
        spans = {n: (data_start + header[n]["data_offsets"][0], data_start + header[n]["data_offsets"][1])
                 for n in names}
        plan = parallel_read.BufferPlan(spans)
        jobs.append((plan, plan.allocate(), names))
    try:
        if fill is not None:
            report.bytes_read += fill(path, jobs)
        else:
            report.bytes_read += parallel_read.read_into(path, [(p, b) for p, b, _ in jobs], reader=report.reader)
    except parallel_read.ShortRead as e:
        raise BadModelFile(path, f"is shorter than its header says (truncated download?): {e}") from e
    except OSError as e:
        raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from e
    tensors = {}
    for plan, buffer, names in jobs:
        report.buffer_bytes += plan.nbytes
        for n in names:
            tensors[n] = plan.view(buffer, n, FILE_DTYPES[header[n]["dtype"]], header[n]["shape"])
    report.tensors_read += len(kept) + len(passing)
    return tensors


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
