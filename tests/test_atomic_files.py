"""Finished files appear whole, with ordinary permissions; a failed write leaves the old file alone."""
import os
import stat

import pytest

from modules.atomic_files import FILE_MODE, replacing


def test_finished_file_has_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "image.png"
    with replacing(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.name.startswith(f".saving-{os.getpid()}-")  # whose it is: see modules/leftovers.py
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == FILE_MODE
    assert os.listdir(target.parent) == ["image.png"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(OSError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["config.json"]


def test_generated_pictures_skip_the_fsync_that_settings_pay(tmp_path, monkeypatch):
    """A picture is renamed into place unsynced, as A1111 writes it (a new name, made again from its seed); a
    settings file replacing the user's own is synced to disk first."""
    from PIL import Image

    from modules import images

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = images.save_image(Image.new("RGB", (32, 32), "red"), tmp_path / "out", 1, "a red circle\nSteps: 20")
    assert synced == []
    with Image.open(path) as saved:
        assert images.read_parameters(saved) == "a red circle\nSteps: 20" and saved.getpixel((5, 5)) == (255, 0, 0)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with replacing(tmp_path / "config.json") as tmp:
        tmp.write_text("{}")
    assert len(synced) == 1 and (tmp_path / "config.json").read_text() == "{}"
