"""--workers ray without Ray: the settings file and flags, and a worker's streamed images put in place of its
result's placeholders by the front end (post-processed and saved there)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from modules import cmd_args
from modules.errors import UserError
from modules.workers.config import worker_config
from modules.workers.front_end_events import StreamedImages
from modules.workers.replica_job import ReplicaHooks


def config_from(tmp_path, text: str, *flags: str):
    path = tmp_path / "workers.yaml"
    path.write_text(text)
    return worker_config(cmd_args.parse_args(["--workers", "ray", "--workers-config", str(path), *flags]))


def test_the_settings_file_is_read_and_the_flags_win(tmp_path):
    config = config_from(tmp_path, "min_replicas: 2\nmax_replicas: 6\ntarget_ongoing_requests: 2\n"
                                   "gpus_per_replica: 1\n", "--max-replicas", "3")
    assert (config.min_replicas, config.max_replicas, config.target_ongoing_requests, config.gpus_per_replica) == \
        (2, 3, 2.0, 1.0)
    assert worker_config(cmd_args.parse_args(["--workers", "ray", "--min-replicas", "2"])).max_replicas == 2


@pytest.mark.parametrize("text, words", [
    ("min_replicas: 2\nreplicas: 3\n", ["workers.yaml", "unknown setting 'replicas'"]),
    ("min_replicas: two\n", ["workers.yaml", "min_replicas must be a whole number"]),
    ("models_per_replica: 1.5\n", ["models_per_replica must be a whole number"]),
    ("min_replicas: 4\nmax_replicas: 2\n", ["max_replicas (2) is below min_replicas (4)"]),
    ("- a\n- b\n", ["must be a mapping"]),
    ("min_replicas: [1\n", ["not valid YAML"]),
])
def test_a_wrong_settings_file_is_refused_naming_file_and_key(tmp_path, text, words):
    with pytest.raises(UserError) as refused:
        config_from(tmp_path, text)
    assert all(w in str(refused.value) for w in words), str(refused.value)


def test_worker_flags_need_workers_ray(capsys):
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--ray-address", "127.0.0.1:6379"])
    assert "need --workers ray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--workers", "ray", "--min-replicas", "0"])


@dataclass
class Result:
    images: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    save_errors: list = field(default_factory=list)


class FrontEndHooks:
    """What the front end's hooks do with an image: post-process (here: flip), save (here: a path, or a full disk)."""

    def __init__(self, full_disk_at: int | None = None):
        self.full_disk_at, self.saved = full_disk_at, []

    def image_ready(self, image, infotext, seed, index, save_to):
        from modules.capabilities.scripting import ImageNotSaved

        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if index == self.full_disk_at:
            raise ImageNotSaved("could not save seed 2: disk full", flipped)
        self.saved.append((seed, infotext))
        return flipped, Path(f"/outputs/{seed}.png")


def test_streamed_images_replace_the_workers_placeholders():
    events = []
    worker_hooks = ReplicaHooks(None, events.append, {"Extra": "1"})
    result = Result()
    for index, seed in enumerate((1, 2, 3)):  # the capability's own loop, on the worker
        image = Image.new("RGB", (4, 2), (10 * index, 0, 0))
        image.putpixel((0, 0), (255, 255, 255))
        image, path = worker_hooks.image_ready(image, f"seed {seed}", seed, index, save_to=object())
        image.info["parameters"] = f"seed {seed}"
        result.images.append(image)
        if path is not None:
            result.paths.append(path)
    assert worker_hooks.extra_infotext() == {"Extra": "1"}
    front = FrontEndHooks(full_disk_at=1)
    streamed = StreamedImages(job=None, hooks=front)
    for event in events:
        streamed.apply(event)
    patched = streamed.patched(result)
    assert front.saved == [(1, "seed 1"), (3, "seed 3")]
    assert patched.paths == [Path("/outputs/1.png"), Path("/outputs/3.png")]  # the unsaved one left the list
    assert patched.save_errors == ["could not save seed 2: disk full"]
    for index, image in enumerate(patched.images):
        assert image.getpixel((3, 0)) == (255, 255, 255)  # the front end's post-processed picture
        assert image.info == {"parameters": f"seed {index + 1}"}  # the worker's info, without its tag


def test_workers_that_have_the_jobs_lora_set_attached_rank_first():
    """The router's order among the workers that hold the job's checkpoint: the LoRA set attached first."""
    from types import SimpleNamespace

    from modules.networks.loras import LoraUse
    from modules.workers.lora_sets import AttachedSets, lora_set_of, ranked_by_lora_set

    ink, film = LoraUse("ink", Path("/m/Lora/ink.safetensors"), 1, 1), LoraUse("film", Path("/m/Lora/film.pt"), 1, 1)
    request = SimpleNamespace(loras=(ink, film), hr_loras=(LoraUse("ink", ink.path, 0.5, 0.5),))
    both = lora_set_of(request)
    assert both == lora_set_of(SimpleNamespace(loras=(film, ink))) == "/m/Lora/film.pt|/m/Lora/ink.safetensors"
    assert lora_set_of(SimpleNamespace(loras=())) == lora_set_of(object()) == ""

    first, second = AttachedSets(per_model=2), AttachedSets(per_model=2)
    first.note("shapes-a", str(ink.path))
    second.note("shapes-a", both)
    second.note("shapes-b", str(ink.path))
    replicas = [SimpleNamespace(name="first", routing_stats=first.routing_stats()),
                SimpleNamespace(name="second", routing_stats=second.routing_stats()),
                SimpleNamespace(name="new", routing_stats={})]

    def names(ranks):
        return [[r.name for r in rank] for rank in ranks]

    assert names(ranked_by_lora_set(replicas, "shapes-a", both)) == [["second"], ["first", "new"]]
    assert names(ranked_by_lora_set(replicas, "shapes-a", str(ink.path))) == [["first"], ["second", "new"]]
    assert names(ranked_by_lora_set(replicas, "shapes-c", str(ink.path))) == [[], ["first", "second", "new"]]
    assert names(ranked_by_lora_set(replicas, "shapes-a", "")) == [["first", "second", "new"]]  # no LoRAs

    for n in range(3):  # a few sets per checkpoint remembered, the least recently used forgotten
        second.note("shapes-a", f"/m/Lora/{n}.pt")
    assert not second.has("shapes-a", both) and second.has("shapes-a", "/m/Lora/2.pt")
    second.forget("shapes-a")  # the checkpoint left the worker: its adapters with it
    assert not second.has("shapes-a", "/m/Lora/2.pt") and second.has("shapes-b", str(ink.path))
