"""Nothing half-written survives a crash: a kill -9 mid-write leaves only temp files, and the next start
through webui.py removes them (and empty numbered files older versions left), never a finished output."""
from __future__ import annotations

import os

import pytest

from modules.capabilities.gan import video as gan_video
from modules.capabilities.gan import gan_video as gan_video_capability
from modules.capabilities.gan.request import GanVideoRequest
from modules.errors import UserError
from modules.leftovers import remove_leftovers
from tests.app_process import AppProcess
from tests.test_gan import gan_backend  # noqa: F401 - fixture

DEAD_PID = 2 ** 22 + 12345  # above Linux's pid_max: never a running process


def make_crash_leftovers(outputs, models):
    """What a kill -9 during saves leaves: temp files of dead writers, an empty numbered video of old versions."""
    day = outputs / "gan-videos" / "2026-01-02"
    images = outputs / "txt2img-images" / "2026-01-02"
    day.mkdir(parents=True)
    images.mkdir(parents=True)
    (models / "GAN").mkdir(parents=True)
    leftovers = [day / f".saving-{DEAD_PID}-abc123.gif", day / "00001-0-3.gif", images / ".saving-k2j4h5.png",
                 models / "GAN" / f".saving-{DEAD_PID}-x.safetensors"]
    for path in leftovers:
        path.write_bytes(b"" if path.name.startswith("00001") else b"GIF89a half")
    real = [day / "00000-0-3.gif", images / "00000-42.png", images / "notes.txt", images / "empty-by-user.txt"]
    for path in real:
        path.write_bytes(b"" if path.name.startswith("empty") else b"finished")
    live = day / f".saving-{os.getpid()}-live.gif"  # another running process is still writing this one
    live.write_bytes(b"in progress")
    return leftovers, [*real, live]


def test_a_start_through_webui_removes_crash_leftovers_and_keeps_real_outputs(tmp_path):
    outputs, models = tmp_path / "outputs", tmp_path / "models"
    leftovers, kept = make_crash_leftovers(outputs, models)
    flags = ["--nowebui", "--models-dir", str(models), "--outdir", str(outputs), "--skip-load-model-at-start"]
    with AppProcess(*flags, env={"ZOO_SETTINGS_FILE": str(tmp_path / "config.json"),
                                 "ZOO_EXTENSIONS_STATE": str(tmp_path / "extensions-state.json")}) as app:
        assert [p.name for p in leftovers if p.exists()] == []
        assert all(p.read_bytes() in (b"finished", b"", b"in progress") for p in kept)
        assert "removed 4 file(s) left half-written" in app.output


def test_settings_temp_files_of_dead_writers_are_removed(tmp_path):
    dead, old_style, alive = (tmp_path / f".config-{DEAD_PID}-1.json", tmp_path / ".config-q8w7.json",
                              tmp_path / f".extensions-{os.getpid()}-2.json")
    for path in (dead, old_style, alive, tmp_path / "config.json"):
        path.write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f".config-{DEAD_PID}-3.json").write_text("{}")  # settings folders are not descended
    remove_leftovers(None, None, [tmp_path])
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [alive.name, "config.json", f".config-{DEAD_PID}-3.json"])


def test_a_symlink_loop_in_outputs_does_not_hang_the_clean_up(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    (tmp_path / "a" / f".saving-{DEAD_PID}-z.png").write_bytes(b"x")
    assert [p.name for p in remove_leftovers(tmp_path)] == [f".saving-{DEAD_PID}-z.png"]


def test_a_video_never_has_its_final_name_before_it_is_complete(gan_backend, monkeypatch):  # noqa: F811
    seen = []
    real_write = gan_video.write_video

    def watching(frames, path, fps):
        seen.append(sorted(p.name for p in path.parent.iterdir()))  # what a kill -9 now would leave
        real_write(frames, path, fps)

    monkeypatch.setattr(gan_video, "write_video", watching)
    result = gan_backend.run(gan_video_capability, GanVideoRequest(model="tiny-gan", seeds="3,4", frames=2, format="gif", size=64))
    assert result.path.name not in seen[0] and result.path.stat().st_size > 0


def test_a_video_write_that_fails_leaves_no_file(gan_backend, monkeypatch):  # noqa: F811
    import imageio.v2 as imageio

    def disk_full(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"GIF89a")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio, "mimwrite", disk_full)
    with pytest.raises(UserError, match="No space left on device"):  # told, not a traceback
        gan_backend.run(gan_video_capability, GanVideoRequest(model="tiny-gan", seeds="7,8", frames=2, format="gif", size=64))
    folders = gan_backend.config.outdir / "gan-videos"
    assert not [p for p in folders.rglob("*") if p.is_file() and ("7-8" in p.name or p.name.startswith(".saving"))]


KILLED_WRITER = """
import sys, time
import numpy as np
import imageio.v2 as imageio
from pathlib import Path
from modules.capabilities.gan import video as gan_video
from modules.capabilities.gan.request import GanVideoRequest

def slow(path, frames, **kwargs):
    Path(path).write_bytes(b"GIF89a half a video")
    print("writing", flush=True)
    time.sleep(60)

imageio.mimwrite = slow
request = GanVideoRequest(model="x", seeds="0,3", frames=2, format="gif", size=64).validated()
gan_video.save_video(np.zeros((2, 64, 64, 3), np.uint8), Path(sys.argv[1]), request)
"""


def test_a_video_writer_killed_with_sigkill_leaves_only_a_temp_file_that_cleanup_removes(tmp_path):
    import signal
    import subprocess
    import sys

    from tests.app_process import ROOT

    outputs = tmp_path / "outputs"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(outputs)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    left = [p for p in outputs.rglob("*") if p.is_file()]
    assert [p.name.startswith(f".saving-{writer.pid}-") for p in left] == [True]  # no final-named partial file
    assert remove_leftovers(outputs) == left and not left[0].exists()
