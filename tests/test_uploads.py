"""Uploads are not kept: each run has its own Gradio folder, the folders of ended runs go at start-up, and
files of the running one an hour after they were written (Gradio's delete_cache)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import requests

from modules import paths
from modules.security.gradio_folder import MAX_AGE_SECONDS, SWEEP_EVERY_SECONDS
from tests.inprocess_app import running_app
from tests.test_leftovers import DEAD_PID


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_an_upload_is_kept_while_fresh_and_removed_once_older_than_an_hour(tmp_path, monkeypatch):
    from gradio import route_utils

    cache = tmp_path / "cache"
    ended = cache / "gradio" / str(DEAD_PID) / "0a1b2c"  # a run killed with its uploads in place
    older_version = cache / "gradio" / "9f8e7d"  # older versions wrote into the folder itself
    for folder in (ended, older_version):
        folder.mkdir(parents=True)
        (folder / "photo.png").write_bytes(b"someone's upload")
    monkeypatch.setattr(paths, "CACHE_DIR", cache)
    models = tmp_path / "models"
    models.mkdir()
    with running_app("--models-dir", str(models), "--outdir", str(tmp_path / "outputs"),
                     "--skip-load-model-at-start") as app:
        own = Path(os.environ["GRADIO_TEMP_DIR"])
        assert own == cache / "gradio" / str(os.getpid())
        assert sorted(p.name for p in (cache / "gradio").iterdir()) == [own.name]
        ui_files = files_under(own)  # what the UI shows from the start (initial values): never removed
        response = requests.post(app.url + "/gradio_api/upload", files={"files": ("mine.txt", b"my upload")},
                                 timeout=60)
        assert response.status_code == 200
        upload = Path(response.json()[0])
        assert upload.is_relative_to(own) and upload.read_bytes() == b"my upload"

        assert app.demo.delete_cache == (SWEEP_EVERY_SECONDS, MAX_AGE_SECONDS)  # Gradio sweeps on that schedule
        route_utils.delete_files_created_by_app(app.demo, MAX_AGE_SECONDS)
        assert upload.exists()  # fresh: kept

        class AnHourLater(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) + timedelta(seconds=MAX_AGE_SECONDS + 60)

        monkeypatch.setattr(route_utils, "datetime", AnHourLater)
        route_utils.delete_files_created_by_app(app.demo, MAX_AGE_SECONDS)
        assert not upload.exists()  # old: removed
        assert files_under(own) == ui_files
