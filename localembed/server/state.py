"""What the views share: config, loaded models, metrics, the token-id decoder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flask import current_app

from localembed.collections.jobs import IndexJobs
from localembed.config.settings import ServerConfig
from localembed.dialects.tokenids import MODEL_MODE, UNAVAILABLE, Decoder
from localembed.engine import InputError
from localembed.models.pull import PullManager
from localembed.server.metrics import Metrics
from localembed.service.execute import Limits, Service
from localembed.service.registry import Registry


@dataclass
class ServerState:
    config: ServerConfig
    registry: Registry
    # The cl100k decoder, or what makes it: read on the first token-id request (reading its
    # 100k ranks took 0.45 s of every server start).
    decoder: Decoder | None | Callable[[], Decoder | None]
    metrics: Metrics = field(default_factory=Metrics)
    pulls: PullManager = field(default_factory=PullManager)
    service: Service = field(init=False)
    jobs: IndexJobs = field(init=False)  # index runs of collections, by name

    def __post_init__(self) -> None:
        self.service = Service(self.registry, Limits.of(self.config))
        self.jobs = IndexJobs(self.service)

    def token_decoder(self) -> Callable[[Sequence[int]], str] | None:
        """How token-id input becomes text: cl100k_base decoding (read when the first token-id
        input is decoded, not for a request of texts), or None (the model's own ids)."""
        if self.config.token_ids == MODEL_MODE:
            return None
        return self._decode

    def _decode(self, tokens: Sequence[int]) -> str:
        if callable(self.decoder) and not hasattr(self.decoder, "decode"):
            with _DECODER_LOCK:
                if callable(self.decoder) and not hasattr(self.decoder, "decode"):
                    self.decoder = self.decoder()
        if self.decoder is None:
            raise InputError(UNAVAILABLE, param="input", code="token_ids_unsupported")
        return self.decoder.decode(tokens)  # type: ignore[union-attr]


_DECODER_LOCK = threading.Lock()


def state() -> ServerState:
    return current_app.extensions["localembed"]
