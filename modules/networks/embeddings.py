"""Textual-inversion embeddings, as A1111 has them: every file in models/embeddings (and --embeddings-dir) is
an embedding named by its file's stem; writing that name in a prompt puts its vectors where the name's tokens
were. Which ones a checkpoint can use depends on its text encoders' widths: the others are "skipped", not
errors. The files are read (weights only) in modules/models/embedding_files.py; this is the list and the
per-job view the prompt encoder (modules/generation/prompt_embeds.py) asks."""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models.embedding_files import EmbeddingData, EmbeddingReader
from modules.networks.files import NetworkFile, NetworkFolder

log = logging.getLogger(__name__)

SHORT_HASH_LENGTH = 12  # A1111's "TI hashes" use the sha256's first 12 hex digits


@dataclass(frozen=True)
class Embedding:
    file: NetworkFile
    data: EmbeddingData

    @property
    def name(self) -> str:
        return self.file.name

    def api_entry(self) -> dict:
        """A1111's /sdapi/v1/embeddings entry."""
        d = self.data
        return {"step": d.step, "sd_checkpoint": d.sd_checkpoint, "sd_checkpoint_name": d.sd_checkpoint_name,
                "shape": d.shape, "vectors": d.count}


@dataclass
class EmbeddingSet:
    """The embeddings as one checkpoint sees them: `keys[i]` is text encoder i's key in the files."""

    keys: tuple[str, ...]
    loaded: dict[str, Embedding] = field(default_factory=dict)  # name -> fits this checkpoint
    skipped: dict[str, Embedding] = field(default_factory=dict)  # another model's width
    failed: dict[str, str] = field(default_factory=dict)  # name -> why the file cannot be used
    _matchers: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def matcher(self, tokenizer) -> "TokenMatcher":
        """The names' tokens under `tokenizer` (made once per tokenizer)."""
        with self._lock:
            found = self._matchers.get(tokenizer)
        if found is None:
            found = TokenMatcher(tokenizer, self.loaded)
            with self._lock:
                self._matchers[tokenizer] = found
        return found


class TokenMatcher:
    """Finds embedding names in a prompt's token ids, the longest name first (A1111's find_embedding_at_position)."""

    def __init__(self, tokenizer, embeddings: dict[str, Embedding]):
        self.by_first: dict[int, list[tuple[tuple[int, ...], Embedding]]] = {}
        names = list(embeddings)
        ids = tokenizer(names, add_special_tokens=False, truncation=False, verbose=False)["input_ids"] if names else []
        for name, name_ids in zip(names, ids):
            if name_ids:
                self.by_first.setdefault(name_ids[0], []).append((tuple(name_ids), embeddings[name]))
        for candidates in self.by_first.values():
            candidates.sort(key=lambda c: -len(c[0]))

    def match(self, tokens: list[int], position: int) -> tuple[int, Embedding] | None:
        """(how many tokens the name takes, the embedding) when an embedding's name starts at `position`."""
        for name_ids, embedding in self.by_first.get(tokens[position], ()):
            if tuple(tokens[position:position + len(name_ids)]) == name_ids:
                return len(name_ids), embedding
        return None


class PromptEmbeddings:
    """One job's embeddings: what its prompts may name, and which they did name (for the infotext)."""

    def __init__(self, embeddings: "Embeddings", found: EmbeddingSet):
        self._embeddings = embeddings
        self.set = found
        self.used: dict[str, Embedding] = {}

    def matcher(self, tokenizer) -> TokenMatcher:
        return self.set.matcher(tokenizer)

    def vectors(self, embedding: Embedding, encoder_index: int) -> torch.Tensor:
        """Its vectors for text encoder `encoder_index`; the embedding counts as used from here on."""
        self.used[embedding.name] = embedding
        return embedding.data.vectors[self.set.keys[encoder_index]]

    def infotext(self) -> dict:
        """A1111's `TI hashes: "name: hash, ..."` for the embeddings the prompts used."""
        if not self.used:
            return {}
        hashes = []
        for name, embedding in self.used.items():
            shorthash = self._embeddings.shorthash(embedding)
            if shorthash:
                hashes.append(f"{name.replace(':', '').replace(',', '')}: {shorthash}")
        return {"TI hashes": ", ".join(hashes)} if hashes else {}


class Embeddings:
    """The embedding files and, per checkpoint (text encoder keys and widths), which of them fit."""

    def __init__(self, folder: NetworkFolder, reader: EmbeddingReader | None = None, hashes=None):
        self.folder = folder
        self.reader = reader or EmbeddingReader()
        self.hashes = hashes  # a modules.models.hashing.HashCache; None: no TI hashes in the infotext
        self._lock = threading.Lock()
        self._sets: dict[tuple, EmbeddingSet] = {}
        self._listing: tuple | None = None

    def refresh(self) -> None:
        self.folder.refresh()
        with self._lock:
            self._sets.clear()

    def read_all(self) -> list[tuple[NetworkFile, EmbeddingData | None, str | None]]:
        """Every file with its data, or why it cannot be used."""
        files = self.folder.files()
        self.reader.forget_except({f.path for f in files})
        found = []
        for f in files:
            try:
                found.append((f, self.reader.read(f.path, (f.size, f.mtime)), None))
            except BadModelFile as e:
                found.append((f, None, str(e)))
        return found

    def for_text_encoders(self, keys: tuple[str, ...], widths: tuple[int, ...]) -> EmbeddingSet:
        """The embeddings whose vectors exist for every encoder key with that encoder's width."""
        files = self.folder.files()
        listing = tuple((f.path, f.mtime, f.size) for f in files)
        with self._lock:
            if listing != self._listing:
                self._sets.clear()
                self._listing = listing
            cached = self._sets.get((keys, widths))
        if cached is not None:
            return cached
        found = EmbeddingSet(keys)
        for f, data, error in self.read_all():
            if data is None:
                found.failed[f.name] = error
                continue
            embedding = Embedding(f, data)
            fits = all(key in data.vectors and data.vectors[key].shape[1] == width for key, width in zip(keys, widths))
            (found.loaded if fits else found.skipped)[f.name] = embedding
        for name, error in found.failed.items():
            log.warning("textual inversion embedding %s not used: %s", name, error)
        with self._lock:
            if listing == self._listing:
                self._sets[(keys, widths)] = found
        return found

    def for_checkpoint(self, info) -> EmbeddingSet:
        """The embeddings as a checkpoint (a registry CheckpointInfo, loaded or not) sees them; with no checkpoint
        (None), every readable one counts as loaded, as in A1111 before a model is loaded."""
        from modules.models.text_encoder_widths import checkpoint_widths

        if info is None:
            everything = EmbeddingSet(())
            for f, data, error in self.read_all():
                if data is None:
                    everything.failed[f.name] = error
                else:
                    everything.loaded[f.name] = Embedding(f, data)
            return everything
        family = info.architecture.spec
        return self.for_text_encoders(family.text.embedding_keys, checkpoint_widths(info))

    def for_pipe(self, pipe, family) -> PromptEmbeddings:
        """A job's view for a loaded pipeline of `family`."""
        from modules.models.text_encoder_widths import pipeline_widths

        return PromptEmbeddings(self, self.for_text_encoders(family.text.embedding_keys,
                                                             pipeline_widths(pipe, family)))

    def shorthash(self, embedding: Embedding) -> str:
        if self.hashes is None:
            return ""
        try:
            return self.hashes.sha256(Path(embedding.file.path))[:SHORT_HASH_LENGTH]
        except OSError:
            return ""
