"""The corpus pipeline on a real Ray cluster of two nodes on this machine
(``ray.cluster_utils.Cluster``: a head and a worker, one CPU each, each its own raylet):
``localembed.ray.Embedder`` in a plain Ray Data pipeline and ``embed-corpus --ray`` give a
local run's rows and vectors, survive a killed actor and a removed node with every chunk
written once, and a rerun embeds only what is missing."""

from __future__ import annotations

import importlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from localembed.collections.corpus import dataset_binding, parts
from localembed.collections.corpus import embed_corpus as local_embed_corpus
from localembed.collections.ingest import IndexOptions
from localembed.engine import EmbedOptions
from localembed.models import catalog
from localembed.models.starter import STARTER_ID
from localembed.ray import Embedder, embed_corpus
from localembed.service.execute import EmbedRequest, Limits, Service
from localembed.service.registry import Registry
from tests.hub import StandInHub

MODULES = ("argparse", "csv", "json", "sqlite3", "zipfile", "tarfile", "gzip", "hashlib",
           "heapq", "bisect", "difflib", "textwrap", "smtplib", "ipaddress", "uuid",
           "secrets", "calendar", "shutil", "pickle", "tempfile", "glob", "fnmatch",
           "imaplib", "ftplib", "mailbox", "wave", "colorsys", "timeit", "trace", "sched")
# Read text per embedding task: small, so that this small corpus keeps both actors busy.
BLOCK = 8 * 1024


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One app home for the cluster's workers and this process (set before the raylets
    start: their workers inherit it)."""
    path = tmp_path_factory.mktemp("home")
    old = os.environ.get("LOCALEMBED_HOME")
    os.environ["LOCALEMBED_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LOCALEMBED_HOME", None)
    else:
        os.environ["LOCALEMBED_HOME"] = old


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A stand-in S3 (moto's server on 127.0.0.1) holding records as a Parquet dataset: its
    ``s3://`` URI, and the same file on this machine. Its credentials are in the environment
    before the cluster starts, so the nodes' workers read it as a user's would."""
    import pyarrow as pa
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    keys = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    table = pa.table({"id": [f"note-{n}" for n in range(12)],
                      "text": [f"Note {n}: the harbour master logs ship number {n * 7}."
                               for n in range(12)],
                      "team": ["tides" if n % 2 else "docks" for n in range(12)]})
    local = tmp_path_factory.mktemp("records") / "notes.parquet"
    pq.write_table(table, local)
    bucket = fs.S3FileSystem(endpoint_override=endpoint, region="us-east-1",
                             allow_bucket_creation=True)
    bucket.create_dir("corpus")
    pq.write_table(table, "corpus/notes/part-0.parquet", filesystem=bucket)
    try:
        yield f"s3://corpus/notes/?endpoint_override={endpoint}&region=us-east-1", local
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def cluster(home: Path, s3: tuple[str, Path]) -> Iterator[Cluster]:
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=made.address, log_to_driver=False)
    made.add_node(num_cpus=1)
    made.wait_for_nodes()
    yield made
    ray.shutdown()
    made.shutdown()


@pytest.fixture(autouse=True)
def _home_per_test(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This module's tests share the cluster's home (the conftest's per-test home would not
    reach its workers)."""
    monkeypatch.setenv("LOCALEMBED_HOME", str(home))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for module in MODULES:
        text = (importlib.import_module(module).__doc__ or "").strip()
        (root / f"{module}.txt").write_text(text + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def local_rows(home: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, dict]:
    """The same corpus embedded in this process: what the cluster must give."""
    out = tmp_path_factory.mktemp("local") / "out"
    registry = Registry(STARTER_ID)
    try:
        local_embed_corpus(Service(registry, Limits()), [folder], out)
    finally:
        registry.close()
    return {r["id"]: r for r in pq.read_table(out).to_pylist()}


def rows(out: Path) -> list[dict]:
    return pq.read_table(out).to_pylist()


def cosine(a: object, b: object) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def assert_like_local(out: Path, local_rows: dict[str, dict]) -> None:
    got = rows(out)
    assert sorted(r["id"] for r in got) == sorted(local_rows)  # every chunk, once
    for row in got:
        assert row["text"] == local_rows[row["id"]]["text"]
        assert cosine(row["embedding"], local_rows[row["id"]]["embedding"]) >= 0.99999


def test_the_cluster_has_two_nodes(cluster: Cluster) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2


def test_the_embedder_in_a_plain_ray_pipeline_gives_local_vectors(cluster: Cluster) -> None:
    texts = [f"Sentence number {n} about ships and harbours." for n in range(12)]
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=4)
    ds = ds.map_batches(Embedder, fn_constructor_kwargs={"model": STARTER_ID, "task": "query"},
                        batch_size=3, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1)
    got = {r["text"]: r["embedding"] for r in ds.take_all()}
    registry = Registry(STARTER_ID)
    try:
        local = Service(registry).embed(EmbedRequest(texts, EmbedOptions(task="query")))
    finally:
        registry.close()
    for text, vector in zip(texts, local.vectors, strict=True):
        assert np.asarray(got[text]).dtype == np.float32
        assert cosine(got[text], vector) >= 0.99999


def test_embed_corpus_on_the_cluster_equals_a_local_run_row_for_row(
        cluster: Cluster, folder: Path, local_rows: dict[str, dict], tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = embed_corpus([folder], out, block_bytes=BLOCK)
    assert report.written == len(MODULES) and report.chunks == len(local_rows)
    assert_like_local(out, local_rows)
    meta = pq.read_schema(parts(out)[0]).metadata[b"localembed"]
    assert meta == pq.read_schema(next(iter(parts(out)))).metadata[b"localembed"]


def test_the_cli_runs_embed_corpus_on_the_cluster(cluster: Cluster, folder: Path,
                                                  local_rows: dict[str, dict],
                                                  tmp_path: Path) -> None:
    from click.testing import CliRunner

    from localembed.cli import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["embed-corpus", str(folder), "-o", str(out), "--ray",
                                      cluster.address, "--actors", "2", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert f"{len(MODULES)} documents written" in result.output
    # the progress line, as parts are written
    assert f"documents {len(MODULES)} chunks {len(local_rows)} " in result.output
    assert_like_local(out, local_rows)


def test_a_rerun_on_the_cluster_embeds_only_what_is_missing(
        cluster: Cluster, folder: Path, local_rows: dict[str, dict], tmp_path: Path) -> None:
    out = tmp_path / "out"
    embed_corpus([folder], out, batch_size=4, block_bytes=BLOCK)
    lost = parts(out)[:2]
    missing = {d for p in lost for d in pq.read_table(p).column("document").to_pylist()}
    for part in lost:
        part.unlink()
    again = embed_corpus([folder], out, batch_size=4, block_bytes=BLOCK)
    assert (again.written, again.unchanged) == (len(missing), len(MODULES) - len(missing))
    assert_like_local(out, local_rows)


def test_embed_corpus_reads_parquet_from_s3_on_the_cluster(
        cluster: Cluster, s3: tuple[str, Path], tmp_path: Path) -> None:
    uri, same_file = s3
    local = tmp_path / "local"
    registry = Registry(STARTER_ID)
    try:
        local_embed_corpus(Service(registry, Limits()), [same_file], local)
    finally:
        registry.close()
    out = tmp_path / "out"
    report = embed_corpus([uri], out, block_bytes=BLOCK)
    assert report.written == 12 and not report.skipped
    assert_like_local(out, {r["id"]: r for r in rows(local)})
    teams = {r["document"]: json.loads(r["metadata"])["team"] for r in rows(out)}
    assert teams["note-3"] == "tides"


def _embedder_pids() -> list[int]:
    """The processes of the embedding actors: Ray titles an actor's process after its
    class."""
    import subprocess

    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True,
                             check=True).stdout
    return [int(line.split(None, 1)[0]) for line in listing.splitlines()
            if "_CorpusEmbedder" in line and "ray::" in line]


def _run_in_background(folder: Path, out: Path) -> tuple[threading.Thread, list]:
    result: list = []

    def run() -> None:
        try:
            result.append(embed_corpus([folder], out, batch_size=2, block_bytes=BLOCK))
        except BaseException as exc:  # handed to the test
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_an_actor_killed_mid_job_still_gives_every_chunk_once(
        cluster: Cluster, folder: Path, local_rows: dict[str, dict], tmp_path: Path) -> None:
    out = tmp_path / "out"
    thread, result = _run_in_background(folder, out)
    deadline = time.monotonic() + 120
    while not parts(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = _embedder_pids()
    assert parts(out) and pids and thread.is_alive(), "the job should be under way"
    os.kill(pids[0], signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive() and not isinstance(result[0], BaseException), result
    assert_like_local(out, local_rows)


def test_a_worker_node_removed_mid_job_still_gives_every_chunk_once(
        home: Path, folder: Path, local_rows: dict[str, dict], tmp_path: Path) -> None:
    ray.shutdown()  # this test's own cluster: it loses a node
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=made.address, log_to_driver=False)  # the driver on the head node
    worker = made.add_node(num_cpus=1)  # added after: the one to remove
    made.wait_for_nodes()
    try:
        out = tmp_path / "out"
        thread, result = _run_in_background(folder, out)
        deadline = time.monotonic() + 120
        while not parts(out) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert parts(out) and thread.is_alive(), "the job should be under way"
        made.remove_node(worker)
        thread.join(300)
        assert not thread.is_alive() and not isinstance(result[0], BaseException), result
        assert_like_local(out, local_rows)
    finally:
        ray.shutdown()
        made.shutdown()



CATALOG_ID = "qwen3-embedding-0.6b-f16"


@pytest.fixture()
def pulling_cluster(synthetic, tmp_path: Path) -> Iterator[tuple[Cluster, StandInHub, bytes]]:
    """Two nodes of two CPUs, each with its own app home (its own model store), and a
    stand-in hub serving the catalog model's file (a tiny Qwen3), slowly: about 2 s a
    download, so that the actors of a node overlap in it."""
    entry = catalog.lookup(CATALOG_ID)
    assert entry is not None
    data = synthetic("qwen3", "f16").read_bytes()
    ray.shutdown()  # the module's cluster shares one home
    with StandInHub() as hub:
        hub.add(entry.repo, entry.filename, data)
        hub.slow = 0.25

        def node_env(name: str) -> dict[str, str]:
            home = tmp_path / name
            return {"LOCALEMBED_HOME": str(home), "HF_HOME": str(home / "hf"),
                    "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}

        made = Cluster(initialize_head=True,
                       head_node_args={"num_cpus": 2, "env_vars": node_env("head")})
        ray.init(address=made.address, log_to_driver=False)
        made.add_node(num_cpus=2, env_vars=node_env("worker"))
        made.wait_for_nodes()
        try:
            yield made, hub, data
        finally:
            ray.shutdown()
            made.shutdown()


def test_a_catalog_model_is_pulled_once_on_each_node(
        pulling_cluster: tuple[Cluster, StandInHub, bytes], tmp_path: Path) -> None:
    _, hub, data = pulling_cluster
    # Four actors of one CPU: two on each node, constructed at once, each pulling.
    actor = ray.remote(num_cpus=1)(Embedder)
    actors = [actor.remote(CATALOG_ID, "document") for _ in range(4)]
    vectors = ray.get([a.vectors.remote(["the tide comes in"]) for a in actors])
    assert all(np.asarray(v).shape == (1, np.asarray(vectors[0]).shape[1]) for v in vectors)
    assert hub.gets == [None, None] and hub.bytes_sent == 2 * len(data)  # one whole each
    for name in ("head", "worker"):
        assert (tmp_path / name / "models" / f"{CATALOG_ID}.gguf").read_bytes() == data


def test_embed_corpus_pulls_a_catalog_model_on_the_nodes(
        pulling_cluster: tuple[Cluster, StandInHub, bytes], folder: Path,
        tmp_path: Path) -> None:
    _, hub, data = pulling_cluster
    out = tmp_path / "out"
    report = embed_corpus([folder], out, IndexOptions(model=CATALOG_ID), actors=4,
                          num_cpus=1, batch_size=4, block_bytes=BLOCK)
    assert report.written == len(MODULES) and report.model == CATALOG_ID
    assert rows(out) and all(len(r["embedding"]) == len(rows(out)[0]["embedding"])
                             for r in rows(out))
    assert len(hub.gets) <= 2  # never twice on a node (a node whose actors came late may
    # still have been pulling when the job ended)
    pulled = [tmp_path / n / "models" / f"{CATALOG_ID}.gguf" for n in ("head", "worker")]
    assert any(p.exists() and p.read_bytes() == data for p in pulled)
    bound = dataset_binding(out)
    assert bound is not None and bound.model == CATALOG_ID
