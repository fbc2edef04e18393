"""A user in a real browser starts a long job and reloads the tab (or closes it) in the middle of a long step:
the job stops within seconds, inside that step, and the device is free for the next user. Before, the job ran
on for as long as the step took (25+ minutes at 2048² on a CPU), with everyone else waiting."""
from __future__ import annotations

import pytest

from tests.browser import set_slider
from tests.inprocess_app import running_app
from tests.slow_blocks import SlowBlocks
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

BLOCK_SECONDS = 2.0  # each UNet block: one step of the tiny model takes 10 s


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-departure")
    flags = ["--models-dir", str(models_dir), "--outdir", str(root / "outputs"), "--ckpt", "tiny-sd15", "--offline"]
    with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        yield live


@pytest.mark.parametrize("leave", ["reload", "close"])
def test_a_tab_that_goes_away_mid_step_stops_its_job_within_seconds(app, page, leave):
    unet = app.backend.manager.load("tiny-sd15").pipe.unet
    known = {j.id for j in app.backend.jobs._jobs.values()}
    page.goto(app.url)
    page.locator("#txt2img_prompt textarea").fill("a red circle")
    set_slider(page, "txt2img_steps", 150)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    with SlowBlocks(unet, BLOCK_SECONDS) as slow:
        per_step = len(slow.blocks)
        page.locator("#txt2img_generate").click()
        wait_for(lambda: slow.calls >= 1, what="the job's first UNet block")
        job = next(j for j in app.backend.jobs._jobs.values() if j.id not in known)
        page.reload() if leave == "reload" else page.close()
        wait_for(lambda: not job.active, timeout=per_step * BLOCK_SECONDS, what="the job to stop inside its step")
    assert job.state == "interrupted" and slow.calls < per_step, slow.calls
    wait_for(lambda: app.backend.manager.jobs_on_device == 0, timeout=10, what="the device to be free")
    assert app.backend.manager.device_lock.waiting == 0
