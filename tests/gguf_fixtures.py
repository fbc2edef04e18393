"""GGUF transformer files written by the `gguf` package, as city96's FLUX/SD3.5 GGUFs are: 2-D weights
quantised (Q8_0, Q4_0 ...), the small input/output layers kept in BF16 (as those files keep them in higher
precision), 1-D tensors (biases, norm scales) in F32, convolutions and rows that do not split into blocks in F16."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# Kept in BF16, as the published FLUX files keep their embedders and final layer in higher precision.
HIGH_PRECISION = ("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.", "x_embedder.",
                  "t_embedder.", "y_embedder.", "context_embedder.", "pos_embed")


def write_gguf(state: dict[str, torch.Tensor], path: Path, quant: str = "Q8_0", arch: str = "flux",
               forced: dict[str, str] | None = None) -> Path:
    """`state` (original key names) as a GGUF file; `forced`: {name: type} for tensors written otherwise."""
    import gguf
    from gguf import GGMLQuantizationType as Q

    qtype = Q[quant]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch=arch)
    for name, tensor in state.items():
        data = tensor.detach().float().numpy()
        if forced and name in forced:
            writer.add_tensor(name, gguf.quants.quantize(data, Q[forced[name]]), raw_dtype=Q[forced[name]])
        elif data.ndim == 1:
            writer.add_tensor(name, data.astype(np.float32))
        elif data.ndim > 2 or data.shape[-1] % block:  # convolutions (SD3's patch embedding), odd rows
            writer.add_tensor(name, data.astype(np.float16))
        elif name.startswith(HIGH_PRECISION):
            writer.add_tensor(name, gguf.quants.quantize(data, Q.BF16), raw_dtype=Q.BF16)
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
