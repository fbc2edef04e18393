"""The LoRAs a prompt names, as a job uses them: resolved to files when the request is validated (an unknown
name is refused then, naming it), attached by the pipeline manager under the job's hold on the device, and
written into the infotext as A1111 does (`Lora hashes: "name: 0123456789ab, other: ..."`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modules.errors import InvalidRequest
from modules.networks.files import NetworkFolder
from modules.networks.lora_metadata import LoraMetadata
from modules.networks.prompt_tags import parse_prompt


@dataclass(frozen=True)
class LoraUse:
    """A LoRA file a request uses, at its weights; `name` as the prompt wrote it."""
    name: str
    path: Path
    te_weight: float
    unet_weight: float


def resolve_loras(prompt: str, lora_files: NetworkFolder, field: str = "prompt",
                  metadata: LoraMetadata | None = None) -> tuple[LoraUse, ...]:
    """The files of the prompt's `<lora:...>` tags: by file name (or path in the folder), else by the alias
    the file's metadata gives (A1111's `ss_output_name`). A LoRA named twice counts once, its weights added
    (A1111 applies it twice, which adds the same way)."""
    found: dict[Path, LoraUse] = {}
    for tag in parse_prompt(prompt, field).loras:
        file = lora_files.find(tag.name)
        if file is None and metadata is not None:
            file = metadata.by_alias(lora_files.files(), tag.name)
        if file is None:
            known = [f.name for f in lora_files.files()][:5]
            hint = f" (some there: {', '.join(known)})" if known else " (none there yet)"
            raise InvalidRequest(field, f"unknown LoRA {tag.name[:100]!r} in {tag.text[:100]}: put its file in "
                                        f"models/Lora or --lora-dir{hint}")
        before = found.get(file.path)
        if before is None:
            found[file.path] = LoraUse(tag.name, file.path, tag.te_weight, tag.unet_weight)
        else:
            found[file.path] = LoraUse(before.name, file.path, before.te_weight + tag.te_weight,
                                       before.unet_weight + tag.unet_weight)
    return tuple(found.values())


def lora_hashes_infotext(hashes: dict[str, str]) -> str | None:
    """A1111's "Lora hashes" value: `name: shorthash` pairs, the names without `:` and `,`."""
    if not hashes:
        return None
    table = str.maketrans("", "", ":,")
    return ", ".join(f"{name.translate(table)}: {short}" for name, short in hashes.items())


def use_loras(model, loras: tuple[LoraUse, ...], hooks) -> None:
    """Make the job's checkpoint compute with exactly `loras` (none: the base model), under the job's hold on
    the device, and record their hashes for every image's infotext (both passes' with the hires fix)."""
    p = hooks.p
    hashes = p.backend.manager.use_loras(model, loras)
    p.lora_hashes = {**getattr(p, "lora_hashes", {}), **hashes}
    if p.lora_hashes:
        p.extra_generation_params["Lora hashes"] = lora_hashes_infotext(p.lora_hashes)
