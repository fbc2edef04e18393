"""Hypothesis properties (issue 13): the prompt parser never raises and stays linear; any value for any request
field either validates or is an InvalidRequest naming that field; options and API bodies likewise."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.errors import InvalidRequest, UserError
from modules.generation.prompt_parser import BREAK_MARKER, MAX_WEIGHT, parse_prompt_attention
from modules.capabilities.txt2img.request import Txt2ImgRequest
from tests.cpu_time import parse_seconds

ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates too: JSON can carry "\ud800"
SYNTAX = st.sampled_from(["(", ")", "[", "]", ":", "\\", " ", "BREAK", "a", "1.5", ":1.2)", ":-3)", ",", "\n"])
PROMPTS = st.one_of(st.text(ANY_CHARACTER, max_size=200), st.lists(SYNTAX, max_size=200).map("".join))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHARACTER, max_size=30),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children,
                                                                                       max_size=3), max_leaves=6)
HUGE = st.integers(min_value=10**300, max_value=10**400)  # too large for a float
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@FAST
@given(PROMPTS)
def test_the_parser_never_raises_and_weights_are_finite(prompt):
    fragments = parse_prompt_attention(prompt)
    assert fragments
    for text, weight in fragments:
        assert isinstance(text, str)
        assert (text, weight) == BREAK_MARKER or (math.isfinite(weight) and abs(weight) <= MAX_WEIGHT)


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(SYNTAX, min_size=1, max_size=8).map("".join))
def test_the_parser_is_linear(unit):
    # 20 000 repeats of any piece of syntax: the old parser was quadratic in the bracket depth.
    prompt = unit * (20_000 // len(unit) + 1)
    seconds, _ = parse_seconds(parse_prompt_attention, prompt)
    assert seconds < 1.0


FIELDS = [f for f in Txt2ImgRequest.__dataclass_fields__ if f != "save_images"]


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), JSON | HUGE, min_size=1, max_size=4))
def test_any_value_validates_or_names_its_field(values):
    try:
        request = Txt2ImgRequest(**values).validated()
    except InvalidRequest as e:
        assert e.field in values or e.field in ("width", "height"), (e.field, values)
        return
    assert 8 <= request.width <= 2048 and 1 <= request.steps <= 150
    request.prompt.encode("utf-8")  # text any tokenizer and PNG chunk can hold


@pytest.mark.parametrize("request_type", ["GanRequest", "GanVideoRequest"])
def test_any_gan_value_validates_or_names_a_field(request_type):
    from modules.generation import gan_request

    cls = getattr(gan_request, request_type)

    @FAST
    @given(st.dictionaries(st.sampled_from(list(cls.__dataclass_fields__)), JSON | HUGE, min_size=1, max_size=3))
    def check(values):
        try:
            cls(**values).validated()
        except InvalidRequest as e:
            assert e.field, values

    check()


@FAST
@given(JSON)
def test_options_validate_or_name_the_key(value):
    from modules.settings import validate

    try:
        assert validate("CLIP_stop_at_last_layers", value) in range(1, 13)
    except InvalidRequest as e:
        assert e.field == "CLIP_stop_at_last_layers"


@pytest.fixture(scope="module")
def api(backend, tmp_path_factory):
    from modules import cmd_args
    from modules.api.routes import create_api

    work = tmp_path_factory.mktemp("api-properties")
    args = cmd_args.parse_args(["--nowebui", "--models-dir", str(backend.config.models_dir), "--outdir",
                                str(work / "outputs"), "--skip-load-model-at-start"])
    return create_api(backend, args, work / "config.json")


API_FIELDS = ["prompt", "negative_prompt", "seed", "sampler_name", "sampler_index", "scheduler", "batch_size", "n_iter",
              "steps", "cfg_scale", "width", "height", "override_settings", "script_name", "script_args",
              "alwayson_scripts", "task_id"]


def test_any_api_body_validates_or_names_a_field(api):
    from pydantic import ValidationError

    from modules.api import models
    from modules.api.routes import api_field_names, script_call
    from modules.capabilities.txt2img import TXT2IMG

    bodies = st.dictionaries(st.sampled_from(API_FIELDS), JSON, max_size=5) | st.fixed_dictionaries(
        {"override_settings": st.dictionaries(st.sampled_from(["CLIP_stop_at_last_layers", "sd_model_checkpoint"]),
                                              JSON, min_size=1)})

    @FAST
    @given(bodies)
    def check(body):
        try:
            parsed = models.Txt2ImgApiRequest.model_validate(body)
        except ValidationError as e:
            assert e.errors()[0]["loc"]  # pydantic names the field: the API answers 422 with it
            return
        try:  # what the route builds, then what the runner refuses before the job waits (API field names)
            with api_field_names():
                api.backend.runner.validate(TXT2IMG, api._txt2img_request(parsed), script_call(parsed))
        except UserError as e:
            field = getattr(e, "field", None)
            assert field is not None or getattr(e, "status_code", 0) == 404, (e, body)
            if field:
                assert field.split(".")[0] in body or field in ("width", "height", "sampler_index", "script_name"), \
                    (field, body)

    check()
