"""Opening NVIDIA's StyleGAN network pickles runs none of their code: payloads in module_src, in a __reduce__ and
in the tensor storages' nested pickles never run (the marker file stays absent), and every refusal names the file."""
from __future__ import annotations

import pickle
import shutil

import pytest
import torch

from modules.errors import BadModelFile
from modules.models.stylegan_files import read_pickle_generator
from modules.models.stylegan_pickle import check_network_pickle, load_network_pickle, named_globals
from tests.stylegan_pickles import nvidia_outputs, payload_pickle, write_nvidia_pickle


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


class _StoragePayload:
    """Reduces the way a tensor storage does (torch.storage._load_from_bytes), with a payload pickle as the bytes."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from torch.storage import _load_from_bytes
        return _load_from_bytes, (payload_pickle(self.marker),)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a payload ran"


def _psi07(generator, name):
    ref = nvidia_outputs(name)
    with torch.no_grad():
        return generator.synthesis(generator.mapping(torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"]), 0.7))


def test_a_payload_in_module_src_is_kept_as_a_hash_and_never_run(tmp_path, marker):
    source = f"import os\nos.system('touch {marker}')\nclass Generator: pass\n"
    path = write_nvidia_pickle(tmp_path / "src-payload.pkl", "sg3t", module_src=source)
    network = load_network_pickle(path)
    assert network["G_ema"].class_name == "Generator"
    import hashlib
    assert network["G_ema"].module_src_sha256 == hashlib.sha256(source.encode()).hexdigest()
    generator, info = read_pickle_generator(path)
    assert info["network"] == "G_ema"
    ref = torch.from_numpy(nvidia_outputs("sg3t")["psi07"])
    assert (_psi07(generator, "sg3t") - ref).abs().max() <= 1e-4  # loaded, the payload not run


@pytest.mark.parametrize("suffix", [".pkl", ".pt", ".pth", ".safetensors", ".ckpt"])
def test_a_reduce_that_calls_os_system_refuses_the_file_by_name(tmp_path, marker, suffix):
    path = write_nvidia_pickle(tmp_path / f"evil-reduce{suffix}", "sg2", extra={"trap": _Payload(marker)})
    with pytest.raises(BadModelFile) as refused:
        load_network_pickle(path)
    assert f"evil-reduce{suffix}" in str(refused.value)
    assert "system" in str(refused.value) and "nothing in it was run" in str(refused.value)
    with pytest.raises(BadModelFile, match=f"evil-reduce{suffix}"):
        check_network_pickle(path)  # the folder scan refuses it too, unpickling nothing


def test_the_refusal_comes_before_any_object_is_built(tmp_path, marker):
    """The global is found by reading the opcodes; find_class would refuse it too, but only later in the stream."""
    path = write_nvidia_pickle(tmp_path / "late-trap.pkl", "sg2c", extra={"zzz_trap": _Payload(marker)})
    assert ("posix", "system") in named_globals(path.read_bytes()) or \
        ("nt", "system") in named_globals(path.read_bytes())
    with pytest.raises(BadModelFile, match="late-trap.pkl: refused"):
        load_network_pickle(path)


@pytest.mark.parametrize("suffix", [".pkl", ".pt"])
def test_storage_bytes_that_carry_a_payload_pickle_are_refused(tmp_path, marker, suffix):
    path = write_nvidia_pickle(tmp_path / f"evil-storage{suffix}", "sg2", extra={"weights": _StoragePayload(marker)})
    with pytest.raises(BadModelFile) as refused:
        load_network_pickle(path)
    assert f"evil-storage{suffix}: refused" in str(refused.value)


def test_a_zip_file_written_by_torch_save_loads_through_persistent_ids(tmp_path):
    path = write_nvidia_pickle(tmp_path / "saved.pt", "sg3r", zip_form=True)
    generator, info = read_pickle_generator(path)
    ref = torch.from_numpy(nvidia_outputs("sg3r")["psi07"])
    assert (_psi07(generator, "sg3r") - ref).abs().max() <= 1e-4


def test_a_zip_file_with_a_payload_is_refused(tmp_path, marker):
    path = write_nvidia_pickle(tmp_path / "evil-zip.pt", "sg2c", zip_form=True, extra={"trap": _Payload(marker)})
    with pytest.raises(BadModelFile, match="evil-zip.pt: refused"):
        load_network_pickle(path)


@pytest.mark.parametrize("numpy_1", [False, True])
def test_numpy_1_and_numpy_2_pickles_both_load(tmp_path, numpy_1):
    path = write_nvidia_pickle(tmp_path / "np.pkl", "sg3t", numpy_1=numpy_1)
    names = {module for module, _ in named_globals(path.read_bytes())}
    assert ("numpy.core.multiarray" if numpy_1 else "numpy._core.multiarray") in names
    generator, _ = read_pickle_generator(path)
    ref = torch.from_numpy(nvidia_outputs("sg3t")["psi07"])
    assert (_psi07(generator, "sg3t") - ref).abs().max() <= 1e-4


def test_g_ema_is_used_when_present_and_g_when_alone(tmp_path):
    ref = torch.from_numpy(nvidia_outputs("sg2")["psi07"])
    generator, info = read_pickle_generator(write_nvidia_pickle(tmp_path / "both.pkl", "sg2"))  # G is perturbed
    assert info["network"] == "G_ema" and (_psi07(generator, "sg2") - ref).abs().max() <= 1e-4
    generator, info = read_pickle_generator(write_nvidia_pickle(tmp_path / "g.pkl", "sg2", without_g_ema=True))
    assert info["network"] == "G" and (_psi07(generator, "sg2") - ref).abs().max() > 1e-2


def test_a_tensorflow_era_pickle_is_refused_with_its_own_message(tmp_path, marker):
    # What stylegan2-ffhq-config-f.pkl starts with: a tuple of dnnlib.tflib.network.Network objects.
    raw = (b"\x80\x03cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01}q\x02X\x04\x00\x00\x00nameq\x03X\x01\x00"
           b"\x00\x00Gq\x04sb.")
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    path.write_bytes(raw)
    with pytest.raises(BadModelFile) as refused:
        load_network_pickle(path)
    message = str(refused.value)
    assert message.startswith("stylegan2-ffhq-config-f.pkl: refused") and "TensorFlow" in message


def test_other_globals_are_refused_by_name(tmp_path, marker):
    for module, name in (("builtins", "eval"), ("torch", "load"), ("numpy", "load"), ("subprocess", "Popen"),
                         ("torch_utils.persistence", "_src_to_module"), ("copyreg", "_reconstructor")):
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nq\x00.")
        with pytest.raises(BadModelFile) as refused:
            load_network_pickle(path)
        assert f"{name}.pkl: refused: the pickle names {module}.{name}" in str(refused.value)


def test_not_a_pickle_at_all_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("just some text")
    with pytest.raises(BadModelFile, match="notes.pkl: refused"):
        load_network_pickle(path)
    shutil.copy(path, tmp_path / "notes.pt")
    with pytest.raises(BadModelFile, match="notes.pt: refused"):
        check_network_pickle(tmp_path / "notes.pt")


def test_the_checkpoint_loader_refuses_the_same_payloads(tmp_path, marker):
    """A StyleGAN pickle renamed .ckpt and put among checkpoints goes through torch's weights-only loader."""
    from modules.models.pickles import load_pickle_state_dict
    path = write_nvidia_pickle(tmp_path / "renamed.ckpt", "sg2", extra={"trap": _Payload(marker)})
    with pytest.raises(BadModelFile, match="renamed.ckpt"):
        load_pickle_state_dict(path)


def test_a_plain_pickle_of_the_payload_is_refused(tmp_path, marker):
    path = tmp_path / "bare.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(BadModelFile, match="bare.pkl: refused"):
        load_network_pickle(path)
