"""LoRAs through the backend, as a job uses them: tags in the prompt change the picture by their weights,
several at once, kohya/PEFT/.pt layouts; the cached checkpoint's own weights come back bit for bit."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.errors import BadModelFile, InvalidRequest
from modules.generation.infotext import parse_infotext
from modules.models import lora_adapters
from modules.networks.loras import LoraUse
from tests import tiny_models
from tests.lora_fixtures import make_kohya_lora, make_peft_lora


@pytest.fixture(scope="module")
def lora_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lora-models")
    checkpoint = tiny_models.make_tiny_sd15(root / "Stable-diffusion" / "tiny-sd15")
    make_kohya_lora(checkpoint, root / "Lora" / "ink.safetensors", seed=1, metadata={"ss_output_name": "ink-v1"})
    make_peft_lora(checkpoint, root / "Lora" / "styles" / "film.safetensors", seed=2)
    make_kohya_lora(checkpoint, root / "Lora" / "old.pt", seed=3)
    make_kohya_lora(checkpoint, root / "Lora" / "unet-only.safetensors", seed=4, text_encoder=False)
    return root


@pytest.fixture(scope="module")
def lora_backend(lora_models, tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    work = tmp_path_factory.mktemp("lora-backend")
    return Backend(BackendConfig(models_dir=lora_models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def generate(backend, prompt: str, **values):
    values = {"checkpoint": "tiny-sd15", **values}
    request = Txt2ImgRequest(prompt=prompt, negative_prompt="blurry", steps=3, width=64, height=64, seed=7,
                             save_images=False, **values)
    result = backend.txt2img(request)
    return np.asarray(result.images[0], dtype=np.int16), parse_infotext(result.infotexts[0])


def differs(a, b) -> float:
    return float(np.abs(a - b).mean())


def weights(model) -> dict[str, torch.Tensor]:
    pipe = model.pipe
    return {f"{part}.{name}": tensor for part in ("unet", "text_encoder")
            for name, tensor in [*getattr(pipe, part).named_parameters(), *getattr(pipe, part).named_buffers()]}


def test_a_lora_changes_the_picture_and_weight_zero_gives_the_base_picture(lora_backend):
    base, info = generate(lora_backend, "a red circle")
    inked, inked_info = generate(lora_backend, "a red circle <lora:ink:1>")
    zero, _ = generate(lora_backend, "a red circle <lora:ink:0>")
    half, _ = generate(lora_backend, "a red circle <lora:ink:0.5>")
    assert differs(inked, base) > 5
    assert np.array_equal(zero, base)
    assert 0 < differs(half, base) < differs(inked, base)
    assert "Lora hashes" not in info
    # The tag stays in the saved prompt (PNG Info sends it back to txt2img as it was).
    assert inked_info["Prompt"] == "a red circle <lora:ink:1>"
    again, _ = generate(lora_backend, "a red circle")  # a job without the tag: the base model again
    assert np.array_equal(again, base)


def test_text_encoder_and_unet_weights_are_separate(lora_backend):
    base, _ = generate(lora_backend, "a blue square")
    te_only, _ = generate(lora_backend, "a blue square <lora:ink:1:0>")
    unet_only, _ = generate(lora_backend, "a blue square <lora:ink:0:1>")
    both, _ = generate(lora_backend, "a blue square <lora:ink:1:1>")
    assert differs(te_only, base) > 1 and differs(unet_only, base) > 1
    assert differs(te_only, unet_only) > 1 and differs(both, te_only) > 1 and differs(both, unet_only) > 1


def test_every_layout_loads_and_several_loras_work_at_once(lora_backend):
    base, _ = generate(lora_backend, "a green star")
    film, _ = generate(lora_backend, "a green star <lora:film:1>")  # diffusers/PEFT keys, in a subfolder
    old, _ = generate(lora_backend, "a green star <lora:old:1>")  # kohya keys in a weights-only .pt
    unet_only, _ = generate(lora_backend, "a green star <lora:unet-only:1>")
    both, info = generate(lora_backend, "a green star <lora:film:1> <lora:old:0.7>")
    for picture in (film, old, unet_only, both):
        assert differs(picture, base) > 5
    assert differs(both, film) > 1 and differs(both, old) > 1
    assert info["Lora hashes"] == (f"film: {a1111_hash(lora_backend, 'film')}, "
                                   f"old: {a1111_hash(lora_backend, 'old')}")


def a1111_hash(backend, name: str) -> str:
    """A1111's LoRA shorthash, computed here the way A1111's hashes.py does: for .safetensors the sha256 of
    the bytes after the header, else of the whole file; 12 hex digits."""
    path = backend.lora_files.find(name).path
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        data = data[8 + int.from_bytes(data[:8], "little"):]
    return hashlib.sha256(data).hexdigest()[:12]


def test_a_lora_is_found_by_the_alias_its_file_gives(lora_backend):
    # ink.safetensors says ss_output_name "ink-v1": prompts copied from A1111 pictures often use that name.
    by_name, _ = generate(lora_backend, "a red circle <lora:ink:1>")
    by_alias, info = generate(lora_backend, "a red circle <lora:ink-v1:1>")
    assert np.array_equal(by_name, by_alias)
    assert info["Lora hashes"] == f"ink-v1: {a1111_hash(lora_backend, 'ink')}"  # the name as written, as A1111


def test_infotext_names_each_lora_with_a1111s_hash(lora_backend):
    _, info = generate(lora_backend, "a red circle <lora:ink:0.8> <lora:Ink:0.2>")  # one LoRA named twice
    assert info["Lora hashes"] == f"ink: {a1111_hash(lora_backend, 'ink')}"


def test_removing_the_adapters_restores_every_weight_bit_for_bit(lora_backend):
    model = lora_backend.manager.load("tiny-sd15")
    lora_backend.manager.loras.remove_all(model.pipe)
    before = {name: tensor.detach().clone() for name, tensor in weights(model).items()}
    objects = {name: id(tensor) for name, tensor in weights(model).items()}
    bytes_before = {name: c.bytes for name, c in lora_backend.manager.cache.entries[model.key].components.items()}
    generate(lora_backend, "a red circle <lora:ink:1> <lora:film:-0.5>")
    assert bytes_before["unet"] < lora_backend.manager.cache.entries[model.key].components["unet"].bytes
    lora_backend.manager.loras.remove_all(model.pipe)
    after = weights(model)
    assert list(after) == list(before)
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert {name: id(tensor) for name, tensor in after.items()} == objects  # the same tensors, not copies
    assert {n: c.bytes for n, c in lora_backend.manager.cache.entries[model.key].components.items()} == bytes_before


def test_switching_between_loras_reuses_the_attached_adapters(lora_backend):
    generate(lora_backend, "x <lora:ink:1>")
    generate(lora_backend, "x <lora:film:1>")
    loads = lora_backend.manager.loras.loads
    first, _ = generate(lora_backend, "x <lora:ink:1>")
    generate(lora_backend, "x <lora:film:1>")
    again, _ = generate(lora_backend, "x <lora:ink:1>")
    assert lora_backend.manager.loras.loads == loads  # no file read again
    assert np.array_equal(first, again)


def test_the_number_of_attached_adapters_is_bounded(lora_backend, monkeypatch):
    monkeypatch.setattr(lora_adapters, "MAX_ATTACHED", 2)
    for name in ("ink", "film", "old", "unet-only"):
        generate(lora_backend, f"x <lora:{name}:1>")
    model = lora_backend.manager.load("tiny-sd15")
    from modules.compat import module_adapters

    assert len(module_adapters(model.pipe.unet)) == 2
    loads = lora_backend.manager.loras.loads
    generate(lora_backend, "x <lora:ink:1>")  # removed meanwhile: read again
    assert lora_backend.manager.loras.loads == loads + 1


def test_an_unknown_lora_is_refused_naming_it(lora_backend):
    with pytest.raises(InvalidRequest) as refused:
        generate(lora_backend, "a cat <lora:no-such-lora:1>")
    assert refused.value.field == "prompt" and "no-such-lora" in refused.value.message
    with pytest.raises(InvalidRequest) as refused:
        generate(lora_backend, "a cat", enable_hr=True, hr_scale=1.5, hr_prompt="a dog <lora:gone:1>")
    assert refused.value.field == "hr_prompt" and "gone" in refused.value.message
    generate(lora_backend, "a cat", hr_prompt="a dog <lora:gone:1>")  # no hires fix: the hires prompt is unused


def test_a_tag_in_the_negative_prompt_stays_words_as_in_a1111(lora_backend):
    request = Txt2ImgRequest(prompt="a cat", negative_prompt="<lora:ink:1>", steps=2, width=64, height=64, seed=1,
                             checkpoint="tiny-sd15", save_images=False)
    result = lora_backend.txt2img(request)
    assert "Lora hashes" not in parse_infotext(result.infotexts[0])


def test_a_lora_that_does_not_fit_is_refused_and_leaves_the_model_as_it_was(lora_backend, lora_models, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(lora_models / "Lora" / "ink.safetensors")
    key = next(k for k in state if k.startswith("lora_unet_") and k.endswith("lora_down.weight"))
    state[key] = torch.zeros(4, 7)  # a layer of another width: a LoRA for another model
    broken = lora_models / "Lora" / "misfit.safetensors"
    save_file(state, str(broken))
    model = lora_backend.manager.load("tiny-sd15")
    lora_backend.manager.loras.remove_all(model.pipe)
    before = {name: tensor.detach().clone() for name, tensor in weights(model).items()}
    try:
        with pytest.raises(BadModelFile, match="misfit.safetensors: does not fit this checkpoint"):
            generate(lora_backend, "a cat <lora:misfit:1>")
    finally:
        broken.unlink()
    base, _ = generate(lora_backend, "a red circle")
    after = weights(model)
    assert list(after) == list(before) and all(torch.equal(after[n], before[n]) for n in before)


def test_img2img_and_the_hires_pass_use_the_prompts_loras(lora_backend):
    from PIL import Image

    picture = Image.new("RGB", (64, 64), (200, 30, 30))

    def img2img(prompt):
        request = Img2ImgRequest(prompt=prompt, steps=4, width=64, height=64, seed=3, checkpoint="tiny-sd15",
                                 save_images=False, denoising_strength=0.8, init_images=[picture])
        result = lora_backend.run(IMG2IMG, request)
        return np.asarray(result.images[0], dtype=np.int16), parse_infotext(result.infotexts[0])

    base, _ = img2img("a red circle")
    inked, info = img2img("a red circle <lora:ink:1>")
    assert differs(inked, base) > 5 and info["Lora hashes"] == f"ink: {a1111_hash(lora_backend, 'ink')}"

    hires = dict(enable_hr=True, hr_scale=1.5, denoising_strength=0.6)
    plain, _ = generate(lora_backend, "a red circle", **hires)
    second, info = generate(lora_backend, "a red circle", hr_prompt="a red circle <lora:film:1>", **hires)
    off, _ = generate(lora_backend, "a red circle", hr_prompt="a red circle <lora:film:0>", **hires)
    # The second pass alone sees the LoRA: at weight 0 it is the plain picture, at 1 it is not.
    assert differs(off, plain) == 0 and differs(second, plain) > 0.1
    assert info["Lora hashes"] == f"film: {a1111_hash(lora_backend, 'film')}"


def test_loras_are_found_in_the_lora_dir_too(lora_models, tmp_path):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    extra = tmp_path / "more-loras"
    make_kohya_lora(lora_models / "Stable-diffusion" / "tiny-sd15", extra / "extra-one.safetensors")
    backend = Backend(BackendConfig(models_dir=lora_models, outdir=tmp_path / "out", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True, lora_dirs=(extra,)))
    names = [f.name for f in backend.lora_files.files()]
    assert "extra-one" in names and "ink" in names
    request = backend.with_loras(Txt2ImgRequest(prompt="x <lora:extra-one:0.5>"))
    assert request.loras == (LoraUse("extra-one", extra / "extra-one.safetensors", 0.5, 0.5),)


def test_adapters_attached_on_the_device_leave_it_with_their_own_ram_copies(lora_models, tmp_path):
    """The device level's bookkeeping (forced on a CPU, as tests/test_model_cache.py does): weights a LoRA adds
    while the checkpoint is on the device get a RAM copy, removed ones are forgotten, and leaving the device
    puts every original weight back."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.models.cache import _tensors

    backend = Backend(BackendConfig(models_dir=lora_models, outdir=tmp_path / "out", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True))
    backend.manager.cache.force_device_level = True
    model = backend.manager.load("tiny-sd15")
    before = {name: tensor.detach().clone() for name, tensor in weights(model).items()}
    generate(backend, "a red circle <lora:ink:1>")
    for component in model.components.values():
        assert component.on_device
        paired = {id(t) for t, _ in component.host_tensors}
        assert paired == {id(t) for t in _tensors(component.module)}
    backend.manager.loras.remove_all(model.pipe)
    for component in model.components.values():
        assert {id(t) for t, _ in component.host_tensors} == {id(t) for t in _tensors(component.module)}
    for component in model.components.values():
        backend.manager.cache._to_host(component)
    after = weights(model)
    assert list(after) == list(before) and all(torch.equal(after[n], before[n]) for n in before)


def test_two_checkpoints_sharing_a_text_encoder_both_get_the_lora(lora_models, tmp_path):
    """The cache shares identical components between checkpoints (the same text encoder in two files): the
    adapter one job attached to the shared module is used by the other, which attaches only what it lacks."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    tiny_models.make_single_file(lora_models / "Stable-diffusion" / "tiny-sd15",
                                 tmp_path / "ckpts" / "tiny-sd15-copy.safetensors")
    backend = Backend(BackendConfig(models_dir=lora_models, outdir=tmp_path / "out", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True, ckpt_dirs=(tmp_path / "ckpts",)))
    first, _ = generate(backend, "a red circle <lora:ink:1>")
    plain_copy, _ = generate(backend, "a red circle", checkpoint="tiny-sd15-copy")
    copy_with_lora, info = generate(backend, "a red circle <lora:ink:1>", checkpoint="tiny-sd15-copy")
    folder, copy = backend.manager.load("tiny-sd15"), backend.manager.load("tiny-sd15-copy")
    assert copy.pipe.text_encoder is folder.pipe.text_encoder  # shared by the cache
    assert differs(copy_with_lora, plain_copy) > 5
    assert differs(copy_with_lora, first) < 1  # the same weights in another file: the same picture
    assert info["Lora hashes"].startswith("ink: ")


def test_an_sdxl_lora_reaches_the_unet_and_both_text_encoders(tmp_path):
    from modules.backend import Backend, BackendConfig
    from modules.compat import module_adapters
    from modules.devices import device_config
    from tests.lora_fixtures import make_kohya_lora_sdxl

    checkpoint = tiny_models.make_tiny_sdxl(tmp_path / "models" / "Stable-diffusion" / "tiny-sdxl")
    make_kohya_lora_sdxl(checkpoint, tmp_path / "models" / "Lora" / "xl.safetensors")
    backend = Backend(BackendConfig(models_dir=tmp_path / "models", outdir=tmp_path / "out",
                                    cache_dir=tmp_path / "cache", devices=device_config("cpu"), offline=True))
    base, _ = generate(backend, "a red circle", checkpoint="tiny-sdxl")
    styled, info = generate(backend, "a red circle <lora:xl:1>", checkpoint="tiny-sdxl")
    te_only, _ = generate(backend, "a red circle <lora:xl:1:0>", checkpoint="tiny-sdxl")
    assert differs(styled, base) > 5 and differs(te_only, base) > 1 and differs(te_only, styled) > 1
    assert info["Lora hashes"] == f"xl: {a1111_hash(backend, 'xl')}"
    pipe = backend.manager.load("tiny-sdxl").pipe
    assert all(module_adapters(getattr(pipe, part)) for part in ("unet", "text_encoder", "text_encoder_2"))


class _RunsCode:
    def __reduce__(self):
        return (print, ("a pickle that runs code",))


@pytest.mark.parametrize("name, content, message", [
    ("loha.safetensors", {"lora_unet_x.hada_w1_a": torch.zeros(2, 2), "lora_unet_x.hada_w1_b": torch.zeros(2, 2)},
     "is a LyCORIS network"),
    ("not-lora.safetensors", {"model.weight": torch.zeros(2, 2)}, "is not a LoRA"),
    ("dora.safetensors", {"lora_unet_x.lora_down.weight": torch.zeros(2, 2), "lora_unet_x.dora_scale": torch.ones(2)},
     "is a DoRA"),
    ("runs-code.pt", {"lora_unet_x.lora_down.weight": _RunsCode()}, "holds more than plain tensors"),
])
def test_a_file_that_is_not_a_usable_lora_is_refused_naming_it(lora_backend, lora_models, name, content, message):
    from safetensors.torch import save_file

    path = lora_models / "Lora" / name
    if path.suffix == ".safetensors":
        save_file(content, str(path))
    else:
        torch.save(content, path)
    try:
        with pytest.raises(BadModelFile) as refused:
            generate(lora_backend, f"a cat <lora:{path.stem}:1>")
        assert str(refused.value).startswith(f"{name}: ") and message in str(refused.value)
    finally:
        path.unlink()
    base, _ = generate(lora_backend, "a red circle")  # the model is untouched
    again, _ = generate(lora_backend, "a red circle")
    assert np.array_equal(base, again)
