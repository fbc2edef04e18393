"""A model built in one thread while a checkpoint loads in another gets real weights.

accelerate's init_empty_weights (inside every checkpoint load) patches module building for the whole process;
on a plain `python webui.py` the GAN tab built the built-in GAN while the default checkpoint loaded in the
background, got meta parameters, and the app died at start-up with "Cannot copy out of meta tensor"."""
from __future__ import annotations

import threading
import time

from modules import paths
from modules.devices import device_config
from modules.models import loader
from modules.models.hashing import HashCache
from modules.models.manager import PipelineManager
from modules.models.refs import GAN, ModelRef
from modules.models.registry import Registry
from modules.models.zoo_registry import ZooRegistry


def test_a_gan_built_while_a_checkpoint_loads_has_real_weights(monkeypatch, tmp_path):
    from accelerate import init_empty_weights

    inside, release = threading.Event(), threading.Event()

    def slow_load(info, task="txt2img"):  # a checkpoint load, held at its meta-device stage (then it stops: no real file)
        with init_empty_weights():
            inside.set()
            release.wait(30)
        raise LookupError("the test's stand-in load ends here")

    monkeypatch.setattr(loader, "pipeline_class", slow_load)
    monkeypatch.setattr(loader, "loaded_task", lambda info: "txt2img")
    hashes = HashCache(tmp_path / "hashes.json")
    zoo = ZooRegistry(paths.MODELS_DIR, hashes)
    zoo.scan()
    manager = PipelineManager(Registry([], hashes), device_config("cpu"), offline=True, zoo_registry=zoo)

    def build_gan():
        with manager.use(ModelRef(GAN)) as loaded:  # the built-in GAN in models/GAN
            built["gan"] = loaded.module

    def load():
        try:
            loader.load_pipeline(None, None, True)
        except LookupError:
            pass

    loading = threading.Thread(target=load)
    loading.start()
    assert inside.wait(30)
    built: dict = {}
    building = threading.Thread(target=build_gan)
    building.start()
    time.sleep(0.5)
    release.set()
    building.join(60)
    loading.join(30)
    assert "gan" in built, "building the GAN failed (meta parameters: 'Cannot copy out of meta tensor')"
    meta = [name for name, p in built["gan"].named_parameters() if p.is_meta]
    assert not meta, meta[:3]
