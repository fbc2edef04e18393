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
