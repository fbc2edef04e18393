"""Loading the zoo's self-describing files (models/Latent β-VAEs, models/GAN GANs) into their modules.

The architectures live in modules/zoo (beta_vae.py, gan.py) beside their training code; reading the
weights into them is the model manager's, like every other weight. A file whose config, tensor names
or shapes do not fit is a BadModelFile naming the file and the problem."""
from __future__ import annotations

from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models.building import BUILD_LOCK
from modules.zoo.model_files import parse_config, read_info, read_metadata


def load_state(path: str | Path, model: torch.nn.Module) -> None:
    """Load the file's tensors into ``model``; names and shapes must match exactly."""
    from safetensors.torch import load_file
    state = load_file(str(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise BadModelFile(path, f"weights do not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise BadModelFile(path, f"weight {name!r} has shape {tuple(state[name].shape)}, "
                                     f"the config needs {tuple(tensor.shape)}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def load_latent_model(path: str | Path):
    """The β-VAE in ``path`` (eval mode, CPU); BadModelFile if the file does not describe one."""
    from modules.zoo.beta_vae import KIND, BetaVAE, BetaVAEConfig

    metadata = read_metadata(path)
    config = parse_config(path, BetaVAEConfig, KIND, metadata)
    with BUILD_LOCK:  # not while another thread's load has meta-device patches on (building.py)
        model = BetaVAE(config)
    load_state(path, model)
    factors = read_info(path, metadata).get("latent_factors")
    if factors is not None:
        if not (isinstance(factors, list) and len(factors) == config.latent_dim):
            raise BadModelFile(path, f"latent_factors must list {config.latent_dim} names")
        model.latent_factors = [str(f) for f in factors]
    return model.eval()


def load_gan(path: str | Path):
    """The generator in ``path`` (eval mode, CPU, laid out for inference); BadModelFile if the file does not
    describe one. Its weights are made channels-last here, once, before any job shares it: conv outputs and
    the nearest upsampling between them then stay channels-last (about 1.5x faster on a CPU, and what tensor
    cores want); moving it to a device keeps the layout."""
    from modules.models.pickles import is_pickle_file
    from modules.models.stylegan_files import PICKLE_SUFFIXES, is_stylegan_file, read_converted_generator, \
        read_pickle_generator
    from modules.zoo.gan import KIND, GANConfig, Generator

    # Judged by content (a pickle renamed .safetensors is still a pickle): NVIDIA's network pickles are read
    # without running them; a .pkl that is no pickle at all is refused by that reader too.
    if is_pickle_file(Path(path)) or (Path(path).suffix.lower() in PICKLE_SUFFIXES and Path(path).is_file()):
        return read_pickle_generator(path)[0]
    metadata = read_metadata(path)
    if is_stylegan_file(metadata):  # converted from a pickle: no pickle needed
        return read_converted_generator(path, metadata)
    config = parse_config(path, GANConfig, KIND, metadata)
    with BUILD_LOCK:
        generator = Generator(config)
    load_state(path, generator)
    if not torch.isfinite(generator.w_avg).all():
        raise BadModelFile(path, "w_avg is not finite")
    # Channels-last weights, so conv outputs and the nearest upsampling between them stay channels-last: on a
    # CPU that makes a DCGAN body about 1.5x faster, and it suits tensor cores on a GPU. Done once, here,
    # before any job shares the generator (moving it to a device keeps the layout).
    return generator.eval().to(memory_format=torch.channels_last)


def load_zoo_model(kind: str, path: Path) -> torch.nn.Module:
    """A β-VAE or a GAN, ready for inference."""
    return load_latent_model(path) if kind == "beta_vae" else load_gan(path)
