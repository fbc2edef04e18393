"""txt2img end to end on tiny checkpoints: samplers, seeds, layouts, outputs, infotext, validation."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from PIL import Image

from modules.errors import InvalidRequest
from modules.generation.infotext import parse_infotext
from modules.generation.samplers import infotext_schedule, sampler_names


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


SAMPLER_CASES = [(name, "Automatic") for name in sampler_names()] + [
    ("Euler", "Karras"), ("Euler", "Align Your Steps"), ("DPM++ 2M", "Simple"), ("Heun", "SGM Uniform")]


@pytest.mark.parametrize("sampler,schedule", SAMPLER_CASES)
def test_every_listed_sampler_makes_an_image(backend, small_request, sampler, schedule):
    result = backend.txt2img(small_request(sampler=sampler, scheduler=schedule, save_images=False))
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    assert pixels(result.images[0]).std() > 0  # not a flat (black) image
    assert f"Sampler: {sampler}," in result.infotexts[0]
    written = parse_infotext(result.infotexts[0]).get("Schedule type")
    assert written == infotext_schedule(sampler, schedule)
    assert schedule == "Automatic" or written == schedule


@pytest.mark.parametrize("name,sampler,schedule,written", [
    ("DPM++ 2M Karras", "DPM++ 2M", "Automatic", "Karras"),  # A1111 >= 1.9 writes the schedule in effect
    ("Heun Karras", "Heun", "Karras", "Karras"),
    ("k_euler", "Euler", "Automatic", None),  # plain uniform: no Schedule type, as A1111
    ("DPM++ 2M SDE", "DPM++ 2M SDE", "Automatic", "Exponential"),
])
def test_old_joined_names_run_as_sampler_and_schedule_type(backend, small_request, name, sampler, schedule, written):
    result = backend.txt2img(small_request(sampler=name, steps=2, save_images=False))
    parsed = parse_infotext(result.infotexts[0])
    assert (parsed["Sampler"], parsed.get("Schedule type")) == (sampler, written)
    assert (result.request.sampler, result.request.scheduler) == (sampler, schedule)


def test_a_schedule_type_the_sampler_cannot_take_is_refused_naming_scheduler(backend, small_request):
    with pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(sampler="Euler a", scheduler="Karras"))
    assert error.value.field == "scheduler" and "Euler a does not take the schedule type 'Karras'" in str(error.value)
    with pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(scheduler="Polyexponential"))
    assert error.value.field == "scheduler"


def test_the_checkpoints_scheduler_config_cannot_change_how_a_sampler_samples():
    """The built-in model's config says Euler, "leading" spacing; DDIM built over a config with clip_sample drew
    noise. Only the noise schedule (betas, prediction type) is taken from it."""
    from modules.generation.samplers import build_sampler
    config = {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
              "clip_sample": True, "set_alpha_to_one": True, "steps_offset": 0, "timestep_spacing": "trailing",
              "use_karras_sigmas": True, "prediction_type": "v_prediction"}
    ddim, _ = build_sampler("DDIM", "Automatic", config, 20)
    assert (ddim.config.clip_sample, ddim.config.set_alpha_to_one, ddim.config.steps_offset) == (False, False, 1)
    ddim.set_timesteps(20)
    assert ddim.timesteps[:3].tolist() == [951, 901, 851]  # A1111's DDIM: 1 + 50 k, "leading" with offset 1
    euler, _ = build_sampler("Euler", "Automatic", config, 20)
    assert not euler.config.use_karras_sigmas and euler.config.timestep_spacing == "linspace"
    assert euler.config.prediction_type == "v_prediction"  # the model's own


def test_each_job_gets_a_scheduler_no_run_has_touched():
    """Schedulers are copied from a kept prototype: a copy's run (its timesteps, step index, a multistep solver's
    past model outputs) reaches neither the prototype nor the next job's copy."""
    import torch

    from modules.generation.samplers import build_sampler
    config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    first, _ = build_sampler("DPM++ 2M", "Karras", config, 10)
    first.set_timesteps(10)
    sample = torch.ones(1, 4, 8, 8)
    for t in first.timesteps[:3]:
        sample = first.step(sample * 0.1, t, sample).prev_sample
    assert first.step_index == 3 and first.model_outputs[-1] is not None
    second, _ = build_sampler("DPM++ 2M", "Karras", config, 10)
    assert second is not first and second.step_index is None and second.lower_order_nums == 0
    assert all(output is None for output in second.model_outputs)
    assert not torch.equal(second.sigmas, first.sigmas)  # before set_timesteps: the training schedule's
    other, _ = build_sampler("DPM++ 2M", "Karras", {**config, "beta_end": 0.02}, 10)
    assert other.config.beta_end == 0.02 and second.config.beta_end == 0.012  # the noise schedule is in the key


def test_same_seed_same_picture_whatever_ran_before(backend, small_request, monkeypatch):
    """Alternating samplers (multistep solvers keep state between steps) never changes a seed's picture, and the
    picture is the one a scheduler built from scratch (no prototype) gives."""
    from modules.generation import samplers

    def picture(sampler):
        return pixels(backend.txt2img(small_request(seed=5, sampler=sampler, save_images=False)).images[0])
    with monkeypatch.context() as patched:
        patched.setattr(samplers, "fresh_scheduler", lambda cls, config, **options: cls.from_config(config, **options))
        fresh = {name: picture(name) for name in ("DPM++ 2M", "Euler a")}
    for name in ("DPM++ 2M SDE", "DPM++ 2M", "Euler a", "DPM++ 2M", "Euler a"):
        if name in fresh:
            assert np.array_equal(picture(name), fresh[name]), name
        else:
            picture(name)


@pytest.mark.parametrize("checkpoint", ["tiny-sd15", "tiny-sd15-single", "tiny-sdxl", "tiny-sdxl-single"])
def test_sd15_and_sdxl_in_both_layouts(backend, small_request, checkpoint):
    result = backend.txt2img(small_request(checkpoint=checkpoint, width=48, height=64, save_images=False))
    assert result.images[0].size == (48, 64)
    assert f"Model: {checkpoint}," in result.infotexts[0]


def test_sd2_checkpoint_generates(backend, small_request, tmp_path):
    from tests import tiny_models

    tiny_models.make_tiny_sd2(backend.checkpoint_folder / "tiny-sd2")
    backend.refresh_checkpoints()
    result = backend.txt2img(small_request(checkpoint="tiny-sd2", save_images=False))
    assert result.images[0].size == (64, 64) and "Model: tiny-sd2," in result.infotexts[0]


def test_live_preview_every_few_steps(backend, small_request):
    job = backend.new_job("txt2img")
    seen = []
    original = job.set_preview
    job.set_preview = lambda image: (seen.append(image.size), original(image))
    backend.txt2img(small_request(steps=11, save_images=False), job)
    assert seen == [(64, 64), (64, 64)]  # after steps 5 and 10
    assert job.progress == 1.0 and job.state == "done"


def test_a_single_file_gives_the_same_image_as_its_folder(backend, small_request):
    folder = backend.txt2img(small_request(checkpoint="tiny-sd15", save_images=False)).images[0]
    single = backend.txt2img(small_request(checkpoint="tiny-sd15-single", save_images=False)).images[0]
    assert np.abs(pixels(folder) - pixels(single)).max() <= 1


def test_same_seed_same_image_and_seeds_are_batch_independent(backend, small_request):
    first = backend.txt2img(small_request(seed=77, sampler="Euler a", save_images=False))
    again = backend.txt2img(small_request(seed=77, sampler="Euler a", save_images=False))
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    other = backend.txt2img(small_request(seed=78, save_images=False))
    assert not np.array_equal(pixels(first.images[0]), pixels(other.images[0]))
    # Image 2 of a batch starting at seed 77 has seed 78 and is the same image as seed 78 alone.
    batch = backend.txt2img(small_request(seed=77, batch_size=2, save_images=False))
    assert batch.index_of_first_image == 1  # the batch grid comes first
    assert batch.seeds[1:] == [77, 78]
    assert np.abs(pixels(batch.images[2]) - pixels(other.images[0])).max() <= 1


def test_random_seed_is_recorded(backend, small_request):
    result = backend.txt2img(small_request(seed=-1, save_images=False))
    assert 0 <= result.seeds[0] < 2**32
    assert f"Seed: {result.seeds[0]}," in result.infotexts[0]


def test_batch_count_and_size_save_numbered_pngs_with_infotext(backend, small_request):
    result = backend.txt2img(small_request(seed=500, batch_count=2, batch_size=2, prompt="a (red:1.3) circle, big"))
    assert result.index_of_first_image == 1 and result.seeds == [500, 500, 501, 502, 503]
    assert len(result.paths) == 5
    grid_path, single_paths = result.paths[0], result.paths[1:]
    grid_folder = grid_path.parent.relative_to(backend.config.outdir).as_posix()
    assert re.fullmatch(r"txt2img-grids/\d{4}-\d{2}-\d{2}", grid_folder)
    with Image.open(grid_path) as grid:  # A1111's grid: 2 rows, 2 columns, with the first image's infotext
        assert grid.size == (128, 128) and parse_infotext(grid.info["parameters"])["Seed"] == "500"
    for path, seed in zip(single_paths, result.seeds[1:]):
        assert re.fullmatch(rf"\d{{5}}-{seed}\.png", path.name)
        assert re.fullmatch(r"txt2img-images/\d{4}-\d{2}-\d{2}", path.parent.relative_to(backend.config.outdir).as_posix())
        with Image.open(path) as image:
            parsed = parse_infotext(image.info["parameters"])
        assert parsed["Prompt"] == "a (red:1.3) circle, big"
        assert parsed["Negative prompt"] == "blurry"
        assert parsed["Seed"] == str(seed)
        assert parsed["Steps"] == "3" and parsed["Sampler"] == "Euler a" and parsed["Size"] == "64x64"
        assert parsed["Model"] == "tiny-sd15" and re.fullmatch(r"[0-9a-f]{10}", parsed["Model hash"])
    numbers = [int(p.name[:5]) for p in single_paths]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4
    assert not list(result.paths[0].parent.glob(".saving-*")), "a temp file was left behind"


def test_a_prompt_longer_than_77_tokens_works(backend, small_request):
    long_prompt = ", ".join(["a red circle on a white background"] * 20)
    result = backend.txt2img(small_request(prompt=long_prompt, save_images=False))
    assert pixels(result.images[0]).std() > 0


def test_emphasis_changes_the_image(backend, small_request):
    plain = backend.txt2img(small_request(prompt="a red circle", save_images=False)).images[0]
    weighted = backend.txt2img(small_request(prompt="a (red:1.8) circle", save_images=False)).images[0]
    assert not np.array_equal(pixels(plain), pixels(weighted))


@pytest.mark.parametrize("field, value, message", [
    ("width", 4, "width: must be between 8 and 2048"),
    ("height", 4096, "height: must be between 8 and 2048"),
    ("steps", 0, "steps: must be between 1 and 150"),
    ("cfg_scale", math.nan, "cfg_scale: must be a finite number"),
    ("sampler", "Euler z", "sampler: unknown sampler 'Euler z'"),
    ("seed", 2**64, "seed: must be between -1"),
    ("batch_size", 0, "batch_size: must be between 1 and 8"),
    ("prompt", "a" * 20_001, "prompt: is 20001 characters long, over the limit of 20000"),
    ("negative_prompt", "(a" * 100_000, "negative_prompt: is 200000 characters long"),
    ("prompt", "a \ud800 b", "prompt: contains an invalid character at position 2"),
])
def test_bad_values_are_refused_naming_the_field_and_nothing_is_written(backend, small_request, field, value, message):
    before = set(backend.config.outdir.rglob("*")) if backend.config.outdir.exists() else set()
    with pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(**{field: value}))
    assert str(error.value).startswith(message)
    assert error.value.field == field
    after = set(backend.config.outdir.rglob("*")) if backend.config.outdir.exists() else set()
    assert after == before


def test_a_prompt_over_the_chunk_limit_is_refused_naming_the_field(backend, small_request):
    with pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(negative_prompt="a BREAK " * 40, save_images=False))
    assert error.value.field == "negative_prompt" and "longer than 32 chunks" in str(error.value)


def test_interrupt_keeps_what_is_done_and_skip_moves_on(backend, small_request):
    job = backend.new_job("txt2img", owner="someone")
    job.interrupt()
    result = backend.txt2img(small_request(batch_count=3, save_images=False), job)
    assert result.images == [] and job.state == "interrupted"

    job = backend.new_job("txt2img", owner="someone")
    original = job.report_step

    def skip_first_batch(step):
        if job.batch_index == 0 and step == 1:
            job.skip()
        original(step)

    job.report_step = skip_first_batch
    result = backend.txt2img(small_request(seed=10, batch_count=2, save_images=False), job)
    # The skipped batch keeps its partly denoised image; the second batch runs in full.
    assert result.seeds[result.index_of_first_image:] == [10, 11] and job.state == "done"


@pytest.mark.parametrize("sampler", ["DPM2", "Heun"])
def test_progress_counts_the_users_steps_with_second_order_samplers(backend, small_request, sampler, monkeypatch):
    """DPM2 and Heun evaluate the model twice per step; the progress bar said 'step 25/20'."""
    from modules.jobs import Job

    reported: list[int] = []
    report = Job.report_step
    monkeypatch.setattr(Job, "report_step", lambda job, step: (reported.append(step), report(job, step))[1])
    job = backend.new_job("txt2img")
    backend.txt2img(small_request(sampler=sampler, steps=4, save_images=False), job)
    assert reported and max(reported) == 4 and reported == sorted(reported)
    assert job.steps == 4 and job.step == 4


def test_sizes_round_down_to_a_multiple_of_8_and_big_seeds_wrap_as_a1111(backend, small_request):
    """A1111's latents are size // 8; torch's CPU generator reads a seed's low 32 bits (so A1111's 2**32 + 5
    draws seed 5's picture)."""
    result = backend.txt2img(small_request(width=70, height=63, seed=2**32 + 5, save_images=False))
    assert result.images[0].size == (64, 56) and result.seeds == [5]
    plain = backend.txt2img(small_request(width=64, height=56, seed=5, save_images=False))
    assert np.array_equal(pixels(result.images[0]), pixels(plain.images[0]))
    assert "Seed: 5, Size: 64x56," in result.infotexts[0]
