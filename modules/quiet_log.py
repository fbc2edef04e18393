"""A quiet log: our own lines and real warnings, without the libraries' noise that is wrong or useless here.

Each filter names the one logger (or print) it applies to and matches one message; nothing of ours is touched.
`install()` runs early in webui.main; `gradio_launch_output()` wraps Gradio's launch, which prints.
"""
from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings

# (logger name, text the message starts with, text it contains): such records are dropped.
NOISY_RECORDS = [
    # We tokenize long prompts whole and then cut them into chunks of 75 (prompt_embeds.py): no indexing errors.
    ("transformers.tokenization_utils_base", "Token indices sequence length is longer than the specified maximum", ""),
    # We never use CLIP/Siglip image processors (no safety checker); the PIL fallback is fine, no torchvision needed.
    ("transformers.utils.import_utils", "`", "requires torchvision (not installed)"),
    # diffusers' own missing f-prefix prints a literal {self.config}; it just makes odd step counts work (DPM++ SDE).
    ("diffusers.schedulers.scheduling_dpmsolver_singlestep", "Changing scheduler ", "`lower_order_final` set to True"),
    # A LoRA attached beside others (modules/models/lora_adapters.py): the others' weights are "missing" from it.
    # A real misfit raises, and the job says which LoRA does not fit.
    ("transformers.integrations.peft", "", "LOAD REPORT"),
    ("diffusers.utils.peft_utils", "Loading adapter weights from state_dict led to missing keys", ""),
]
# Gradio names its launch() argument; this app's flag is --share. Said in our words instead.
GRADIO_SHARE_HINT = "* To create a public link, set `share=True` in `launch()`."
OUR_SHARE_HINT = "* To create a public link, use --share."


class _DropMessages(logging.Filter):
    def __init__(self, rules: list[tuple[str, str]]):
        super().__init__()
        self.rules = rules

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge: let it through
            return True
        return not any(message.startswith(start) and contains in message for start, contains in self.rules)


def install() -> None:
    """Attach the filters (once) to the loggers they name; warnings of other origins stay as they are."""
    rules: dict[str, list[tuple[str, str]]] = {}
    for name, start, contains in NOISY_RECORDS:
        rules.setdefault(name, []).append((start, contains))
    for name, name_rules in rules.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(name_rules))
    # Passing torch_dtype is deprecated in diffusers 0.42; our loader passes dtype, but its own loaders still may.
    warnings.filterwarnings("ignore", message=r"`torch_dtype` is deprecated", category=FutureWarning,
                            module=r"diffusers\.")


class _LineFilter(io.TextIOBase):
    """Hands whole lines on to `target`, Gradio's share hint replaced by `share_hint` (dropped when None)."""

    def __init__(self, target, share_hint: str | None):
        self.target = target
        self.share_hint = share_hint
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line == GRADIO_SHARE_HINT:
                line = self.share_hint
            if line is not None:
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.target.write(self.pending)
            self.pending = ""
        self.target.flush()


@contextlib.contextmanager
def gradio_launch_output(share_requested: bool = False):
    """While Gradio launches: its prints pass through _LineFilter (everything else printed then passes unchanged).
    After a --share that could not be served (server.py has said why), the hint to use --share is dropped."""
    line_filter = _LineFilter(sys.stdout, None if share_requested else OUR_SHARE_HINT)
    try:
        with contextlib.redirect_stdout(line_filter):
            yield
    finally:
        line_filter.flush()
