"""Interrupt stops a job inside a long step, within one UNet block (a 2048² step on a CPU takes minutes),
and inside the VAE decode; the hooks that make it so never outlive the job. Interrupting before the first
step ended gives no image and saves nothing; later, the images of the latents sampled so far are kept
(A1111's way), their infotext saying where the job stopped."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from modules.generation.infotext import parse_infotext
from modules.generation.stop_points import is_checked, stop_points
from modules.jobs import Interrupted
from tests.slow_blocks import SlowBlocks
from tests.waiting import wait_for

BLOCK_SECONDS = 0.3  # each UNet block (down, mid, up) is made this slow: one step is several seconds


def files_in(folder):
    return set(folder.rglob("*")) if folder.exists() else set()


def hook_count(model) -> int:
    """The checks (and any forward pre-hook) left on the model's stop points."""
    return sum(len(m._forward_pre_hooks) + is_checked(m) for m in stop_points(model))


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
    assert job.state == "interrupted" and len(result.images) == 3 and len(result.paths) == 3  # grid + 2
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


def test_the_hooks_go_even_when_the_job_fails(backend, small_request, tiny, caplog):
    from modules.capabilities import InternalError

    job = backend.new_job("txt2img", owner="someone")

    def fail(calls):
        raise RuntimeError("a broken block")

    with SlowBlocks(tiny.pipe.unet, 0, fail), pytest.raises(InternalError) as raised:
        backend.txt2img(small_request(save_images=False), job)
    assert any(raised.value.error_id in r.getMessage() and "a broken block" in str(r.exc_info[1])
               for r in caplog.records)  # the user gets an id, the log the error
    assert job.state == "failed" and hook_count(tiny.pipe.unet) == 0
    assert len(backend.txt2img(small_request(save_images=False)).images) == 1  # the model still works


@pytest.mark.parametrize("kind", ["unet", "vae"])
def test_a_long_self_attention_is_sliced_with_a_check_between_slices_and_the_same_numbers(monkeypatch, kind):
    """One self-attention over a 2048² image is minutes on a CPU: its queries go a slice at a time."""
    import torch
    from diffusers.models.attention_processor import Attention

    from modules.generation import stop_points as points

    torch.manual_seed(0)
    if kind == "unet":  # a transformer block's attn1: (batch, positions, channels)
        attn, x = Attention(query_dim=32, heads=2, dim_head=16), torch.randn(2, 1024, 32)
    else:  # the VAE's mid-block attention: (batch, channels, h, w), group norm and a residual connection
        attn = Attention(query_dim=32, heads=1, dim_head=32, norm_num_groups=8, residual_connection=True, bias=True,
                         upcast_softmax=True, _from_deprecated_attn_block=True)
        x = torch.randn(1, 32, 32, 32)
    monkeypatch.setattr(points, "SLICE_SCORES", 1024 * 64)  # 16 slices of 64 queries
    checks = []
    with torch.inference_mode():
        whole = attn(x)
        sliced = points.SlicedSelfAttention(attn.processor, lambda: checks.append(1))(attn, x)
    assert len(checks) == 16
    assert torch.allclose(whole, sliced, atol=1e-5), (whole - sliced).abs().max()

    def stop_at_third():
        if len(checks) == 18:
            raise Interrupted()
        checks.append(1)

    with pytest.raises(Interrupted), torch.inference_mode():
        points.SlicedSelfAttention(attn.processor, stop_at_third)(attn, x)


def test_a_job_with_sliced_attention_makes_the_same_image_and_puts_the_processors_back(backend, small_request, tiny,
                                                                                       monkeypatch):
    from modules.generation import stop_points as points

    request = small_request(width=256, height=256, steps=2, save_images=False)
    plain = backend.txt2img(request).images[0]
    monkeypatch.setattr(points, "SLICE_SCORES", 1024 * 64)  # 32×32 latents: every self-attention is sliced
    slices = []

    class CountingSlices(points.SlicedSelfAttention):
        def __init__(self, original, check):
            super().__init__(original, lambda: (slices.append(1), check()))

    monkeypatch.setattr(points, "SlicedSelfAttention", CountingSlices)
    def processors_now():
        return {name: type(m.processor) for name, m in tiny.pipe.unet.named_modules() if hasattr(m, "processor")}

    processors = processors_now()
    sliced = backend.txt2img(request).images[0]
    assert len(slices) >= 2 * 16  # two steps, at least one sliced self-attention each
    diff = np.abs(np.asarray(plain, dtype=np.int16) - np.asarray(sliced, dtype=np.int16)).max()
    assert diff <= 1, diff
    assert processors_now() == processors


def test_the_checks_live_on_the_stop_points_for_the_job_only(tiny):
    """Each stop point's forward checks first while inside `checked` (no forward hook: one would send every call
    through torch's slower general path), and afterwards each forward is what it was: the class's, or an
    instance's own."""
    import torch

    from modules.generation.stop_points import checked

    unet = tiny.pipe.unet
    points = stop_points(unet)
    own = points[0].forward
    points[0].forward = own  # an instance forward of its own (as accelerate's offload hooks set one)
    checks = []
    try:
        with checked(unet, lambda: checks.append(1)), torch.inference_mode():
            assert all(is_checked(m) for m in points) and not any(m._forward_pre_hooks for m in points)
            channels, size = unet.config.in_channels, unet.config.sample_size
            unet(torch.zeros(1, channels, size, size), 10,
                 encoder_hidden_states=torch.zeros(1, 77, unet.config.cross_attention_dim))
        assert len(checks) >= len(points)  # every stop point checked (some run more than once)
        assert points[0].__dict__["forward"] is own
        assert not any("forward" in m.__dict__ for m in points[1:]) and hook_count(unet) == 0
    finally:
        del points[0].forward


def test_a_small_picture_checks_before_each_block_only_and_a_large_one_inside_them(tiny):
    """Below FINE_PIXELS a denoiser call is short: its blocks are the stop points and attention keeps its own
    processor; from FINE_PIXELS on every module with modules of its own is checked and self-attention sliced."""
    from diffusers.models.attention_processor import Attention

    from modules.generation.stop_points import FINE_PIXELS, SlicedSelfAttention, checked

    unet = tiny.pipe.unet
    blocks = stop_points(unet, fine=False)
    inner = [m for m in stop_points(unet) if m not in blocks]
    attentions = [m for m in unet.modules() if isinstance(m, Attention)]
    assert blocks and inner and attentions
    with checked(unet, lambda: None, 64 * 64):
        assert all(is_checked(m) for m in blocks) and not any(is_checked(m) for m in inner)
        assert not any(isinstance(m.processor, SlicedSelfAttention) for m in attentions)
    with checked(unet, lambda: None, FINE_PIXELS):
        assert all(is_checked(m) for m in blocks + inner)
        assert all(isinstance(m.processor, SlicedSelfAttention) for m in attentions)
    assert hook_count(unet) == 0 and not any(isinstance(m.processor, SlicedSelfAttention) for m in attentions)
