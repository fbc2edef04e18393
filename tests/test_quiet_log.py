"""What a new user reads in the console: our lines and real warnings, not the libraries' noise (issue 20, item 8)."""
from __future__ import annotations

import logging
import time

import pytest
import requests

from modules import quiet_log
from modules.paths import MODELS_DIR
from tests.app_process import AppProcess

NOISE = [
    "set `share=True` in `launch()`",  # Gradio's hint names its own argument; ours is --share
    "torchvision",  # transformers' image-processor fallback, at import
    "FutureWarning",  # diffusers: torch_dtype is deprecated
    "{self.config}",  # diffusers' DPM singlestep scheduler, a missing f-prefix
    "Token indices sequence length",  # transformers, false for us: long prompts are chunked
]
# ~900 tokens with the built-in model's tokenizer (32 a sequence): within its 32 chunks of 30.
LONG_PROMPT = " ".join(["red circle white background big"] * 128)


@pytest.fixture(scope="module")
def app_output(tmp_path_factory):
    if not (MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes model is not shipped")
    outdir = tmp_path_factory.mktemp("outputs")
    with AppProcess("--api", "--outdir", str(outdir)) as app:
        # DPM++ SDE with an odd step count is what makes diffusers log its {self.config} line.
        body = {"prompt": LONG_PROMPT, "width": 32, "height": 32, "steps": 3, "sampler_name": "DPM++ SDE"}
        response = requests.post(f"{app.url}/sdapi/v1/txt2img", json=body, timeout=300)
        assert response.status_code == 200, response.text
        assert len(response.json()["images"]) == 1
        time.sleep(0.5)  # the reader thread catches up with the job's last lines
    return app.output


def test_start_and_long_prompt_job_log_only_our_lines(app_output):
    found = [noise for noise in NOISE if noise in app_output]
    assert not found, f"{found} in the app's output:\n{app_output}"
    # Any other library warning (Python's warnings print the library's file and the category, e.g. "FutureWarning:")
    library_lines = [line for line in app_output.splitlines() if "site-packages" in line or "Warning:" in line]
    assert not library_lines, f"library warnings in the app's output:\n{app_output}"
    assert "Running on local URL" in app_output
    assert "* To create a public link, use --share." in app_output


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_only_the_named_messages_are_dropped():
    quiet_log.install()
    quiet_log.install()  # twice, as in-process tests call main again: still one filter each
    collect = _Collect()
    names = ["transformers.tokenization_utils_base", "diffusers.schedulers.scheduling_dpmsolver_singlestep",
             "modules.generation"]
    for name in names:
        logging.getLogger(name).addHandler(collect)
    try:
        for name in names:
            logging.getLogger(name).warning("something else went wrong")
        logging.getLogger(names[0]).warning("Token indices sequence length is longer than the specified maximum (9)")
        logging.getLogger(names[2]).warning("Token indices sequence length is longer than the specified maximum")
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(collect)
    assert collect.messages == ["something else went wrong"] * 3 + [
        "Token indices sequence length is longer than the specified maximum"]
    assert len(logging.getLogger(names[0]).filters) == 1


def test_gradio_share_hint_in_our_words(capsys):
    with quiet_log.gradio_launch_output():
        print("* Running on local URL:  http://127.0.0.1:7860")
        print(quiet_log.GRADIO_SHARE_HINT)
    assert capsys.readouterr().out.splitlines() == ["* Running on local URL:  http://127.0.0.1:7860",
                                                    "* To create a public link, use --share."]
    with quiet_log.gradio_launch_output(share_requested=True):  # --share given, but no tunnel: no hint to use it
        print(quiet_log.GRADIO_SHARE_HINT)
        print("partial", end="")
    assert capsys.readouterr().out == "partial"


def test_multi_vector_textual_inversion_still_expands():
    """prompt_embeds skips diffusers' maybe_convert_prompt (it logs the false length warning) only where it would
    change nothing: it still expands a multi-vector embedding's token."""
    from diffusers.loaders import TextualInversionLoaderMixin

    from modules.generation.prompt_embeds import tokenize_prompt
    from modules.zoo.train.clip_tokenizer import load_tokenizer

    tokenizer = load_tokenizer(MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "tokenizer")
    plain = [chunk.token_ids for chunk in tokenize_prompt(tokenizer, "red <emb> circle", TextualInversionLoaderMixin())]
    tokenizer.add_tokens(["<emb>", "<emb>_1"])
    ids = tokenizer.convert_tokens_to_ids(["<emb>", "<emb>_1"])
    chunks = tokenize_prompt(tokenizer, "red <emb> circle", TextualInversionLoaderMixin())
    assert len(chunks) == 1 and all(i in chunks[0].token_ids for i in ids) and [c.token_ids for c in chunks] != plain
