"""What the views share: config, loaded models, metrics, the token-id decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from localembed.pull import PullManager
from localembed.registry import Registry
from localembed.server.metrics import Metrics
from localembed.settings import ServerConfig
from localembed.tokenids import Decoder


@dataclass
class ServerState:
    config: ServerConfig
    registry: Registry
    decoder: Decoder | None
    metrics: Metrics = field(default_factory=Metrics)
    pulls: PullManager = field(default_factory=PullManager)


def state() -> ServerState:
    return current_app.extensions["localembed"]
