"""The built-in X/Y/Z plot: values parsed as A1111 writes them, a grid of the right size with the right
labels over the very images the cells make, saved with its infotext; on txt2img and on the GAN Sampler."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from PIL import Image

from modules.errors import InvalidRequest
from modules.extensions import Extensions, ScriptCall
from modules.capabilities.gan import GanRequest, gan
from modules.generation.infotext import parse_infotext
from tests.test_extensions_fixtures import REPO_EXTENSIONS, attach_extensions  # noqa: F401 - a fixture

TINY = dict(steps=2, width=64, height=64)


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"xyz_test_{name}", REPO_EXTENSIONS / "xyz_plot" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


grid_module = load("xyz_grid")
axes_module = load("xyz_axes")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def xyz(x=("Nothing", ""), y=("Nothing", ""), z=("Nothing", ""), legend=True, cells=True) -> ScriptCall:
    return ScriptCall("X/Y/Z plot", [*x, *y, *z, legend, cells])


@pytest.mark.parametrize("text, kind, expected", [
    ("1, 2, 5", "int", [1, 2, 5]),
    ("1-5", "int", [1, 2, 3, 4, 5]),
    ("1-10 (+3)", "int", [1, 4, 7, 10]),
    ("10-1 (-4)", "int", [10, 6, 2]),
    ("0-1 [5]", "float", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("-1, 3", "int", [-1, 3]),
    ("7.5, 2-3 (+0.5)", "float", [7.5, 2.0, 2.5, 3.0]),
    ('Euler a, "DPM++ 2M, Karras"', "text", ["Euler a", "DPM++ 2M, Karras"]),
])
def test_values_are_parsed_as_a1111_writes_them(text, kind, expected):
    assert axes_module.parse_values(text, kind, "X values") == expected


@pytest.mark.parametrize("text, kind, message", [
    ("", "int", "X values: give at least one value"),
    ("1, two", "int", "X values: 'two' is not a number"),
    ("1.5", "int", "X values: '1.5' is not a whole number"),
    ("1-5 (-1)", "int", "does not lead from 1 to 5"),
    ("1-1000", "int", "over the limit of 64 per axis"),
])
def test_bad_values_name_the_axis(text, kind, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")):
        axes_module.parse_values(text, kind, "X values")


def test_grid_has_a_label_strip_per_axis_and_the_cells_pasted_unchanged():
    colours = [[(200, 0, 0), (0, 200, 0)], [(0, 0, 200), (200, 200, 0)], [(0, 200, 200), (90, 90, 90)]]
    cells = [[Image.new("RGB", (64, 48), c) for c in row] for row in colours]
    x_labels, y_labels = ["Steps: 10", "Steps: 20"], ["CFG Scale: 1", "CFG Scale: 4", "CFG Scale: 7"]
    grid = grid_module.draw_grid(cells, x_labels, y_labels)
    where = grid_module.layout((64, 48), x_labels, y_labels)
    assert (where.cell_width, where.cell_height) == (192, 144)  # small cells drawn 3x, pixels kept sharp
    assert grid.size == where.size == (where.left + 2 * 192, where.top + 3 * 144)
    assert where.left > 0 and where.top > 0
    for row in range(3):
        for column in range(2):
            crop = grid.crop(where.cell_box(column, row))
            assert (pixels(crop) == colours[row][column]).all()
    ink = pixels(grid) < 128  # dark text on white
    for column in range(2):  # every column label and every row label has text in its strip
        x0, _, x1, _ = where.cell_box(column, 0)
        assert ink[:where.top, x0:x1].any()
    for row in range(3):
        _, y0, _, y1 = where.cell_box(0, row)
        assert ink[y0:y1, :where.left].any()
    # different text, different pixels: the labels are really drawn from their strings
    other = grid_module.draw_grid(cells, ["Steps: 11", "Steps: 20"], y_labels)
    assert other.size == grid.size and not np.array_equal(pixels(other), pixels(grid))
    bare = grid_module.draw_grid(cells, ["", ""], ["", "", ""])
    assert bare.size == (2 * 192, 3 * 144)


def test_txt2img_plot_makes_a_labelled_grid_of_the_cells_and_saves_it(backend, attach_extensions, small_request):
    attach_extensions(REPO_EXTENSIONS)
    result = backend.txt2img(small_request(seed=77, **TINY),
                             scripts=xyz(x=("Steps", "1, 2"), y=("CFG Scale", "1, 7")))
    grid, cells = result.images[0], result.images[1:]
    assert len(cells) == 4
    where = grid_module.layout((64, 64), ["Steps: 1", "Steps: 2"], ["CFG Scale: 1", "CFG Scale: 7"])
    assert grid.size == where.size
    # the very labels and cells, in X-then-Y order
    expected = grid_module.draw_grid([cells[0:2], cells[2:4]], ["Steps: 1", "Steps: 2"],
                                     ["CFG Scale: 1", "CFG Scale: 7"])
    assert np.array_equal(pixels(grid), pixels(expected))
    params = [parse_infotext(text) for text in result.infotexts]
    assert [(p["Steps"], p["CFG scale"], p["Seed"]) for p in params[1:]] == [
        ("1", "1", "77"), ("2", "1", "77"), ("1", "7", "77"), ("2", "7", "77")]
    grid_info = params[0]
    assert (grid_info["Script"], grid_info["X Type"], grid_info["X Values"], grid_info["Y Type"]) == (
        "X/Y/Z plot", "Steps", "1, 2", "CFG Scale")
    saved = result.paths[0]
    assert saved.parent.parent.name == "txt2img-grids"
    with Image.open(saved) as image:
        assert image.size == grid.size and image.info["parameters"] == result.infotexts[0]


def test_checkpoint_z_axis_and_prompt_search_replace(backend, attach_extensions, small_request):
    attach_extensions(REPO_EXTENSIONS)
    result = backend.txt2img(small_request(prompt="a red circle", seed=-1, save_images=False, **TINY),
                             scripts=xyz(x=("Prompt S/R", "red, blue"), z=("Checkpoint", "tiny-sd15, tiny-sdxl")))
    grid, cells = result.images[0], result.images[1:]
    params = [parse_infotext(text) for text in result.infotexts[1:]]
    assert [(p["Prompt"], p["Model"]) for p in params] == [
        ("a red circle", "tiny-sd15"), ("a blue circle", "tiny-sd15"),
        ("a red circle", "tiny-sdxl"), ("a blue circle", "tiny-sdxl")]
    assert len({p["Seed"] for p in params}) == 1  # seed -1: one random seed for the whole plot
    labels = ["red", "blue"]
    expected = grid_module.side_by_side([grid_module.draw_grid([cells[0:2]], labels, [""], "tiny-sd15"),
                                         grid_module.draw_grid([cells[2:4]], labels, [""], "tiny-sdxl")])
    assert np.array_equal(pixels(grid), pixels(expected))


@pytest.mark.parametrize("x, message", [
    (("Steps", "2, 0"), "steps: must be between 1 and 150, got 0"),
    (("Prompt S/R", "green, blue"), "X values: the first value, 'green', is what gets replaced"),
    (("Sampler", "Euler a, Euler z"), "sampler: unknown sampler 'Euler z'"),
    (("Checkpoint", "no-such-model"), "unknown checkpoint 'no-such-model'"),
    (("Colour", "1"), "X type: unknown axis 'Colour'"),
])
def test_a_bad_value_fails_before_any_image_is_made(backend, attach_extensions, small_request, x, message):
    attach_extensions(REPO_EXTENSIONS)
    before = sorted(backend.config.outdir.rglob("*.png")) if backend.config.outdir.exists() else []
    with pytest.raises(InvalidRequest, match=message):
        backend.txt2img(small_request(prompt="a red circle", **TINY), scripts=xyz(x=x))
    after = sorted(backend.config.outdir.rglob("*.png")) if backend.config.outdir.exists() else []
    assert after == before


@pytest.fixture(scope="module")
def gan_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from tests.test_gan import make_gan

    root = tmp_path_factory.mktemp("xyz-gan-models")
    make_gan(root / "GAN" / "tiny-gan.safetensors")
    work = tmp_path_factory.mktemp("xyz-gan-work")
    backend = Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu")))
    Extensions.load_from(REPO_EXTENSIONS, work / "state.json").attach(backend)
    return backend


def test_gan_plot_over_seed_and_psi(gan_backend):
    result = gan_backend.run(gan, GanRequest(model="tiny-gan", seeds="5", class_name="square"),
                             scripts=xyz(x=("Seed", "0-2"), y=("Truncation ψ", "0, 1")))
    grid, cells = result.images[0], result.images[1:]
    direct = [gan_backend.run(gan, GanRequest(model="tiny-gan", seeds=str(seed), truncation_psi=psi,
                                          class_name="square", save_images=False)).images[0]
              for psi in (0.0, 1.0) for seed in (0, 1, 2)]
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(cells, direct))
    x_labels, y_labels = ["Seed: 0", "Seed: 1", "Seed: 2"], ["Truncation ψ: 0", "Truncation ψ: 1"]
    assert grid.size == grid_module.layout((128, 128), x_labels, y_labels).size  # 32 px cells drawn 4x, crisp
    big = [image.resize((128, 128), Image.NEAREST) for image in direct]
    expected = grid_module.draw_grid([big[0:3], big[3:6]], x_labels, y_labels)
    assert np.array_equal(pixels(grid), pixels(expected))
    info = parse_infotext(result.infotexts[0])
    assert (info["Script"], info["X Type"], info["Y Type"], info["Class"]) == ("X/Y/Z plot", "Seed", "Truncation ψ",
                                                                               "square")
    assert result.paths[0].parent.parent.name == "gan-grids"


@pytest.mark.parametrize("text", ["0-1 [100000000]", "1-100000000", "1-100000000 (+1)", "0-1 [" + "9" * 5000 + "]",
                                  "0-" + "9" * 400 + " (+0.5)", "1-40, 41-80"])
def test_huge_ranges_are_refused_by_count_without_being_built(text):
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequest, match="over the limit of 64 per axis|too large"):
            axes_module.parse_values(text, "float", "X values")
        assert tracemalloc.get_traced_memory()[1] < 1_000_000  # the old code built the list: +4.7 GB
    finally:
        tracemalloc.stop()


def test_prompt_search_replace_is_measured_before_the_prompts_are_made():
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    axis = axes_module.find_axis(axes_module.TXT2IMG_AXES, "Prompt S/R", "X type")
    context = axes_module.AxisContext(Txt2ImgRequest(prompt="a " * 5000), None, "X values")
    with pytest.raises(InvalidRequest) as error:
        axes_module.axis_values(axis, "a, " + "b" * 15_000, context)
    assert str(error.value) == "X values: a replacement makes a prompt of 75005000 characters, over the limit of 20000"


def boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_a_19_sampler_grid_of_32_px_cells_has_legible_labels_that_never_overlap():
    """The grid was 219x142 px with column labels run together ("Seed:Seed:Seed:", "HeunDPM2")."""
    from modules.generation.samplers import sampler_names, schedule_labels

    samplers = ([*sampler_names(), *schedule_labels()] * 2)[:19]  # labels as long as the old 19 samplers
    assert len(samplers) == 19
    x_labels = [f"Sampler: {name}" for name in samplers]
    y_labels = ["Seed: 1", "Seed: 2", "Seed: 3"]
    cells = [[Image.new("RGB", (32, 32), (255, 0, 0)) for _ in x_labels] for _ in y_labels]
    boxes: list = []
    grid = grid_module.draw_grid(cells, x_labels, y_labels, "Checkpoint: zoo-shapes", text_boxes=boxes)
    where = grid_module.layout((32, 32), x_labels, y_labels, "Checkpoint: zoo-shapes")
    assert where.cell_width >= 128 and grid_module.font_for(where.cell_width).size >= 14
    assert len(boxes) >= 19 + 3 + 1
    for i, box in enumerate(boxes):
        assert 0 <= box[0] and 0 <= box[1] and box[2] <= grid.width and box[3] <= grid.height
        assert not any(boxes_overlap(box, other) for other in boxes[i + 1:]), box
        for row in range(3):
            for column in range(19):
                assert not boxes_overlap(box, where.cell_box(column, row)), (box, column, row)
    # every column label stays inside its own column
    for column in range(19):
        x0, _, x1, _ = where.cell_box(column, 0)
        ink = pixels(grid)[where.title:where.top, x0:x1] < 128
        assert ink.any()
    # the cells are whole-factor enlargements of the 32-px images: sharp red squares
    assert (pixels(grid.crop(where.cell_box(0, 0))) == (255, 0, 0)).all()


def a1111_args(x_type=4, x_values="1,2", x_dropdown="", y_type=9, y_values="", y_dropdown=None,
               include_sub_grids=False, vary_seeds_x=True, margin_size=0, csv_mode=False) -> list:
    """A1111 v1.10.1's 18 script_args (its xyz_grid.py ui()): types are indices into its txt2img axis list
    (4: Steps, 9: Sampler, 11: Checkpoint name)."""
    return [x_type, x_values, x_dropdown, y_type, y_values, ["Euler", "Euler a"] if y_dropdown is None else y_dropdown,
            0, "", "", True, True, include_sub_grids, False, vary_seeds_x, False, False, margin_size, csv_mode]


@pytest.fixture
def api_client(backend, attach_extensions, tmp_path):
    from fastapi.testclient import TestClient

    from tests.inprocess_app import make_app

    attach_extensions(REPO_EXTENSIONS)
    before = backend.settings
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        yield client
    backend.use_settings(before)


def test_a1111s_18_script_args_make_the_plot_through_the_api(api_client):
    import json

    body = {"prompt": "a red circle", "seed": 100, "steps": 3, "width": 64, "height": 64,
            "override_settings": {"sd_model_checkpoint": "tiny-sd15"}, "script_name": "X/Y/Z plot",
            "script_args": a1111_args()}
    answer = api_client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    params = [parse_infotext(text) for text in info["infotexts"]]
    assert len(params) == 5  # the grid, then the four cells (Include Sub Images)
    assert [(p["Steps"], p["Sampler"], p["Seed"]) for p in params[1:]] == [
        ("1", "Euler", "100"), ("2", "Euler", "101"), ("1", "Euler a", "100"), ("2", "Euler a", "101")]
    assert (params[0]["X Type"], params[0]["Y Type"], params[0]["Y Values"]) == ("Steps", "Sampler", "Euler,Euler a")
    # csv_mode: the values come from the text box instead
    body["script_args"] = a1111_args(y_values="Euler a", y_dropdown=["Euler"], csv_mode=True, vary_seeds_x=False)
    params = [parse_infotext(t) for t in json.loads(api_client.post("/sdapi/v1/txt2img", json=body).json()["info"])
              ["infotexts"]]
    assert [(p["Sampler"], p["Seed"]) for p in params[1:]] == [("Euler a", "100"), ("Euler a", "100")]


@pytest.mark.parametrize("args, field", [
    (a1111_args(include_sub_grids=True), "Include Sub Grids"),
    (a1111_args(margin_size=10), "Grid margins (px)"),
    (a1111_args(x_type=2), "X type"),  # Var. seed: not an axis of this plot
    (a1111_args(x_type=99), "X type"),
    (a1111_args()[:12], "script_args"),
])
def test_a1111_args_this_plot_lacks_are_refused_naming_them(api_client, args, field):
    body = {"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "script_name": "X/Y/Z plot",
            "script_args": args, "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
    answer = api_client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 422 and field in answer.text, answer.text


def test_script_info_lists_the_plot_once_per_tab(api_client):
    infos = api_client.get("/sdapi/v1/script-info").json()
    plots = [(i["tab"], i["is_img2img"]) for i in infos if i["title"] == "X/Y/Z plot"]
    assert len(plots) == len(set(plots)) and ("txt2img", False) in plots


def test_schedule_type_and_variation_axes_set_the_request_as_a1111s_do():
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    request = Txt2ImgRequest(sampler="Euler", scheduler="Exponential")

    def applied(label: str, text: str) -> list:
        axis = axes_module.find_axis(axes_module.TXT2IMG_AXES, label, "X type")
        values = axes_module.axis_values(axis, text, axes_module.AxisContext(request, None, "X values"))
        return [axis.apply(request, value) for value in values]
    assert [r.scheduler for r in applied("Schedule type", "Karras, sgm_uniform, Align Your Steps")] == \
        ["Karras", "SGM Uniform", "Align Your Steps"]
    assert [r.subseed for r in applied("Var. seed", "7-9")] == [7, 8, 9]
    assert [r.subseed_strength for r in applied("Var. strength", "0-1 [3]")] == [0.0, 0.5, 1.0]
    # an old joined name brings its schedule; a schedule the sampler cannot take falls back to Automatic
    assert [(r.sampler, r.scheduler) for r in applied("Sampler", "DPM++ 2M Karras, Heun, Euler a")] == \
        [("DPM++ 2M", "Karras"), ("Heun", "Exponential"), ("Euler a", "Automatic")]
    with pytest.raises(InvalidRequest) as error:
        applied("Schedule type", "Karras, Polyexponential")
    assert error.value.field == "scheduler" and "Polyexponential" in str(error.value)
