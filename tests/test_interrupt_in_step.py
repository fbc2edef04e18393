"""Interrupt stops a job inside a long step, within one UNet block (a 2048² step on a CPU takes minutes),
and inside the VAE decode; the hooks that make it so never outlive the job. Interrupting before the first
step ended gives no image and saves nothing; later, the images of the latents sampled so far are kept
(A1111's way), their infotext saying where the job stopped."""
from __future__ import annotations

import threading

import pytest

from modules.generation.infotext import parse_infotext
from modules.generation.stop_points import stop_points
from tests.slow_blocks import SlowBlocks
from tests.waiting import wait_for

BLOCK_SECONDS = 0.3  # each UNet block (down, mid, up) is made this slow: one step is several seconds


def files_in(folder):
    return set(folder.rglob("*")) if folder.exists() else set()


def hook_count(model) -> int:
    return sum(len(m._forward_pre_hooks) for m in stop_points(model))


@pytest.fixture
def tiny(backend):
    return backend.manager.load("tiny-sd15")


def test_interrupt_in_the_first_step_stops_within_one_block_and_saves_nothing(backend, small_request, tiny):
    job = backend.new_job("txt2img", owner="someone")
    unet = tiny.pipe.unet
    before = files_in(backend.config.outdir)
    with SlowBlocks(unet, BLOCK_SECONDS) as slow:
        per_step = len(slow.blocks)  # one UNet call per step (the two CFG halves go as one batch)
        at_interrupt = {}

        def press_interrupt():  # another thread, as the Interrupt button's request is
            wait_for(lambda: slow.calls >= 2, what="the second block of the first step")
            at_interrupt["calls"] = slow.calls
            job.interrupt()

        presser = threading.Thread(target=press_interrupt)
        presser.start()
        result = backend.txt2img(small_request(steps=20, save_images=True), job)
        presser.join(10)
    after_interrupt = slow.calls - at_interrupt["calls"]
    assert after_interrupt <= 1 < per_step, (at_interrupt, slow.calls)  # not the rest of the step
    assert job.state == "interrupted"
    assert result.images == [] and files_in(backend.config.outdir) == before  # no noise labelled "Steps: 20"
    assert hook_count(unet) == 0 and hook_count(tiny.pipe.vae.decoder) == 0  # nothing left on the shared model


def test_interrupt_after_some_steps_keeps_the_image_and_says_where_it_stopped(backend, small_request):
    job = backend.new_job("txt2img", owner="someone")
    original = job.report_step

    def interrupt_after_two(step):
        original(step)
        if step == 2:
            job.interrupt()  # pressed during step 3: stops inside it

    job.report_step = interrupt_after_two
    result = backend.txt2img(small_request(steps=10, batch_size=2, save_images=True), job)
    assert job.state == "interrupted" and len(result.images) == 2 and len(result.paths) == 2
    parsed = parse_infotext(result.infotexts[0])
    assert parsed["Steps"] == "10" and parsed["Stopped at step"] == "2"


def test_a_second_interrupt_stops_the_decode_keeping_the_images_decoded(backend, small_request, tiny):
    """The first press stops the sampling; its images are being decoded when the second press comes."""
    job = backend.new_job("txt2img", owner="someone")
    original = job.report_step

    def interrupt_after_one(step):
        original(step)
        if step == 1:
            job.interrupt()

    def second_press_in_second_image(calls):  # each image's decode calls every decoder block once
        if calls == per_image + 1:
            job.interrupt()

    job.report_step = interrupt_after_one
    decoder = tiny.pipe.vae.decoder
    with SlowBlocks(decoder, 0.05, second_press_in_second_image) as slow:
        per_image = len(slow.blocks)
        result = backend.txt2img(small_request(steps=5, batch_size=3, save_images=False), job)
    assert len(result.images) == 1 and job.state == "interrupted"
    assert slow.calls == per_image + 1  # the second image stopped after its first block
    assert hook_count(decoder) == 0


def test_a_client_that_leaves_mid_sampling_gets_nothing_decoded(backend, small_request):
    job = backend.new_job("txt2img", owner="someone")
    original = job.report_step

    def leave_after_two(step):
        original(step)
        if step == 2:
            job.cancel()

    job.report_step = leave_after_two
    result = backend.txt2img(small_request(steps=10, batch_size=2, save_images=False), job)
    assert result.images == [] and job.state == "interrupted"


def test_the_hooks_go_even_when_the_job_fails(backend, small_request, tiny):
    job = backend.new_job("txt2img", owner="someone")

    def fail(calls):
        raise RuntimeError("a broken block")

    with SlowBlocks(tiny.pipe.unet, 0, fail), pytest.raises(RuntimeError, match="a broken block"):
        backend.txt2img(small_request(save_images=False), job)
    assert job.state == "failed" and hook_count(tiny.pipe.unet) == 0
    assert len(backend.txt2img(small_request(save_images=False)).images) == 1  # the model still works
