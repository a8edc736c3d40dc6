"""Model management bodies and answers (catalog, pulls, default, import), for the web UI, the
tray and scripts."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from localembed.models.catalog import Listed
from localembed.models.pull import Progress  # a pull's own state, served as it is

# Checked by the store (letters, digits, '.', '_', '-', ':'; no paths), which says why.
ModelId = Annotated[str, msgspec.Meta(description="a model id, not a path")]


class PullBody(msgspec.Struct, kw_only=True):
    model: ModelId


class DefaultBody(msgspec.Struct, kw_only=True):
    model: ModelId
    persist: bool = True


class ImportBody(msgspec.Struct, kw_only=True):
    path: str
    id: ModelId | None = None


class Catalog(msgspec.Struct):
    data: list[Listed]
    object: Literal["list"] = "list"


class ProgressList(msgspec.Struct):
    data: list[Progress]
    object: Literal["list"] = "list"


class Deleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: Literal["model"] = "model"
