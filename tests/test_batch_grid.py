"""A1111's batch grid: a job of several images puts their grid first, saved to txt2img-grids; the
setting grid_save turns it off."""
from __future__ import annotations

import json

import pytest

from modules.errors import InvalidRequest
from modules.generation.batch_grid import grid_rows, grids_enabled
from modules.settings import SETTINGS_FILE_ENV, Settings


def test_rows_as_a1111_lays_them_out():
    assert [grid_rows(n) for n in (1, 2, 3, 4, 6, 8, 9, 16)] == [1, 1, 2, 2, 2, 3, 3, 4]


def test_grid_save_is_on_by_default_and_a_setting_turns_it_off(tmp_path):
    settings_file = tmp_path / "config.json"
    assert grids_enabled(settings_file)
    Settings(settings_file).update({"grid_save": False})
    assert json.loads(settings_file.read_text())["grid_save"] is False and not grids_enabled(settings_file)
    with pytest.raises(InvalidRequest, match="grid_save: must be true or false"):
        Settings(settings_file).update({"grid_save": "no"})


def test_with_grid_save_off_a_batch_is_just_its_images(backend, small_request, tmp_path, monkeypatch):
    settings_file = tmp_path / "config.json"
    settings_file.write_text(json.dumps({"grid_save": False}))
    monkeypatch.setenv(SETTINGS_FILE_ENV, str(settings_file))
    result = backend.txt2img(small_request(seed=9, batch_size=2, save_images=False))
    assert result.index_of_first_image == 0 and result.seeds == [9, 10] and len(result.images) == 2


def test_a_single_image_gets_no_grid(backend, small_request):
    result = backend.txt2img(small_request(seed=9, save_images=False))
    assert result.index_of_first_image == 0 and len(result.images) == 1
