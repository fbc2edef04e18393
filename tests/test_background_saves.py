"""Saving off the device: a job's PNGs are written after it leaves the device, so the next job samples while
they are written; the job still returns only once its files are there (the full disk case: test_faults.py)."""
import threading
import time

from PIL import Image

from modules import images
from modules.capabilities.txt2img import TXT2IMG

SLOW_WRITE_S = 1.5


def test_the_next_job_samples_while_the_previous_ones_image_is_written(backend, small_request, monkeypatch):
    real_write = images.write_image
    writes: list[tuple[float, float]] = []

    def slow_write(*args, **kwargs):  # an injected slow disk
        started = time.time()
        time.sleep(SLOW_WRITE_S)
        real_write(*args, **kwargs)
        writes.append((started, time.time()))

    monkeypatch.setattr(images, "write_image", slow_write)
    backend.txt2img(small_request(save_images=False))  # the checkpoint loaded, so the two jobs only sample
    first_job = backend.new_job("txt2img", owner="a")
    second_job = backend.new_job("txt2img", owner="b")
    returned: dict = {}

    def first():
        returned["first"] = backend.run(TXT2IMG, small_request(seed=11), first_job)
        returned["first_at"] = time.time()

    thread = threading.Thread(target=first)
    thread.start()
    while first_job.state != "running":
        time.sleep(0.005)
    backend.run(TXT2IMG, small_request(seed=12, save_images=False), second_job)
    thread.join(timeout=60)

    (write_started, write_ended), = writes[:1]
    assert second_job.started_at < write_ended  # sampling began before the first job's PNG was written
    assert second_job.started_at > write_started - SLOW_WRITE_S  # (the two are of this run)
    result = returned["first"]
    assert returned["first_at"] >= write_ended  # the first job returned once its file was there
    assert len(result.paths) == 1 and result.paths[0].is_file()
    with Image.open(result.paths[0]) as saved:
        assert saved.info["parameters"] == result.infotexts[0]


def test_reserved_names_are_never_handed_out_twice(tmp_path):
    first = images.reserve_path(tmp_path, 1)
    second = images.reserve_path(tmp_path, 1)
    assert first != second and not first.exists()
    images.write_image(Image.new("RGB", (8, 8)), second, "text")
    images.write_image(Image.new("RGB", (8, 8)), first, "text")
    assert images.reserve_path(tmp_path, 1).name.startswith("00002-")


def test_one_image_is_written_by_the_job_itself_several_by_a_writer_while_it_samples(tmp_path):
    """Starting a thread costs more than writing a small PNG: a job's only image is written in its own thread at
    wait() (after the device is released); from a second image on, a writer thread takes them, in order."""
    from modules.capabilities.background_saves import BackgroundSaves

    def saves_of(count: int) -> tuple[list[str], list[str]]:
        writers, told = [], []
        saves = BackgroundSaves()
        for i in range(count):
            path = tmp_path / f"{count}-{i}.png"
            saves.submit(path, lambda i=i: writers.append((i, threading.current_thread().name)), "could not save",
                         lambda i=i: told.append(i))
        assert saves.wait() == []
        return writers, told

    writers, told = saves_of(1)
    assert writers == [(0, threading.current_thread().name)] and told == [0]
    writers, told = saves_of(3)
    assert [i for i, _ in writers] == [0, 1, 2] and told == [0, 1, 2]
    assert all(name.startswith("save") for _, name in writers)
