"""The schema-driven summary decoder gives the snapshot that `json.loads` of the whole answer gives.

On every captured Ray answer (tests/fixtures/ray-dashboard/), on the three-node cluster built from
them, on big summaries split node by node, and with every field `build_snapshot` reads missing or
of another JSON type (as in other Ray versions): the same snapshot, never an exception.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from raytui.model.cluster import ClusterSnapshot
from raytui.sources import dashboard_decode
from raytui.sources.dashboard_decode import decode_summary
from raytui.sources.dashboard_parse import DashboardResponses, build_snapshot
from tests.test_dashboard_parse import FIXTURES, cluster_responses, load

OTHER_TYPES: tuple[Any, ...] = (None, "x", "", 7, -1.5, True, [], [1, "a"], {}, {"k": 1})
"""What a field may turn into in another Ray version."""

MISSING = object()


def _both(summary: Any, responses: DashboardResponses) -> tuple[ClusterSnapshot, ClusterSnapshot]:
    """(old path: json.loads of the whole body, new path: decode_summary of the same body)."""
    body = json.dumps(summary).encode()
    old = build_snapshot("u", _with(responses, json.loads(body)), 1.0)
    new = build_snapshot("u", _with(responses, decode_summary(body)), 1.0)
    return old, new


def _with(responses: DashboardResponses, summary: Any) -> DashboardResponses:
    fields = {k: getattr(responses, k) for k in DashboardResponses.__slots__}
    return DashboardResponses(**{**fields, "summary": summary})


def test_every_captured_answer_gives_the_same_snapshot() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == [
        "api_cluster_status.json",
        "api_jobs.json",
        "api_v0_nodes.json",
        "api_v0_tasks_summarize.json",
        "api_version.json",
        "nodes_view_summary.json",
    ]
    responses = DashboardResponses(
        nodes=load("api_v0_nodes.json"),
        jobs=load("api_jobs.json"),
        version=load("api_version.json"),
    )
    body = (FIXTURES / "nodes_view_summary.json").read_bytes()  # as Ray sent it
    old = build_snapshot("u", _with(responses, json.loads(body)), 1.0)
    new = build_snapshot("u", _with(responses, decode_summary(body)), 1.0)
    assert new == old and len(new.nodes) == 1 and new.nodes[0].hostname == "vm"
    # Every other captured answer, put where the summary goes: nothing raises, same snapshot.
    for other in FIXTURES.iterdir():
        old, new = _both(json.loads(other.read_bytes()), responses)
        assert new == old, other.name


def test_three_node_cluster_gives_the_same_snapshot() -> None:
    responses = cluster_responses()
    old, new = _both(responses.summary, responses)
    assert new == old
    assert [len(n.gpus) for n in new.nodes] == [0, 2, 1]
    labels = [p.label for p in new.nodes[1].gpus[0].processes]
    assert labels == ["actor Engine.busy", "task sleeper", "ray worker", "driver", None]


def _read_paths(summary: dict[str, Any]) -> Iterator[tuple[str, ...]]:
    """Every place in the cluster summary that `build_snapshot` reads (and their containers)."""
    yield ("data",)
    yield ("data", "summary")
    yield ("data", "nodeLogicalResources")
    yield ("data", "nodeLogicalResources", next(iter(summary["data"]["nodeLogicalResources"])))
    for i, node in enumerate(summary["data"]["summary"][:2]):  # the head, the GPU worker
        n = ("data", "summary", i)
        yield n
        for key in ("hostname", "ip", "cpu", "mem", "gpus", "raylet"):
            yield (*n, key)
        yield (*n, "mem", 0)
        for key in (
            "nodeId",
            "state",
            "nodeManagerAddress",
            "nodeManagerHostname",
            "isHeadNode",
            "resourcesTotal",
            "endTimeMs",
            "stateMessage",
            "coreWorkersStats",
        ):
            yield (*n, "raylet", key)
        yield (*n, "raylet", "resourcesTotal", "CPU")
        for w in range(min(2, len(node["raylet"]["coreWorkersStats"]))):
            yield (*n, "raylet", "coreWorkersStats", w)
            for key in ("pid", "workerType", "actorId"):
                yield (*n, "raylet", "coreWorkersStats", w, key)
        for g in range(len(node["gpus"])):
            yield (*n, "gpus", g)
            for key in (
                "index",
                "name",
                "uuid",
                "utilizationGpu",
                "memoryUsed",
                "memoryTotal",
                "temperatureC",
                "powerMw",
                "processesPids",
            ):
                yield (*n, "gpus", g, key)
            if node["gpus"][g]["processesPids"]:
                yield (*n, "gpus", g, "processesPids", 0)
                for key in ("pid", "gpuMemoryUsage"):
                    yield (*n, "gpus", g, "processesPids", 0, key)


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if value is MISSING:
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


def test_every_field_missing_or_of_another_type_gives_the_same_snapshot() -> None:
    responses = cluster_responses()
    paths = list(_read_paths(responses.summary))
    assert len(paths) > 70
    for path in paths:
        for value in (MISSING, *OTHER_TYPES):
            summary = _set(responses.summary, path, value)
            old, new = _both(summary, responses)  # neither raises
            assert new == old, (path, value)


def test_whole_document_of_another_type() -> None:
    responses = cluster_responses()
    for value in OTHER_TYPES:
        old, new = _both(value, responses)
        assert new == old and len(new.nodes) == 3  # the GCS still lists the nodes


def _big_summary(copies: int, mutate: Any = None) -> dict[str, Any]:
    summary = copy.deepcopy(cluster_responses().summary)
    entries = summary["data"]["summary"]
    big = []
    for i in range(copies):
        for entry in entries:
            e = copy.deepcopy(entry)
            e["raylet"]["nodeId"] = f"{i:04d}{e['raylet']['nodeId'][4:]}"
            if mutate is not None:
                mutate(i, e)
            big.append(e)
    summary["data"]["summary"] = big
    return summary


def _split(body: bytes) -> Any:
    """The node-by-node path only (None where it would fall back to one whole decode)."""
    with memoryview(body) as view:
        return dashboard_decode._decode_by_node(body, view)


@pytest.mark.parametrize(
    "dumps",
    [
        lambda d: json.dumps(d),
        lambda d: json.dumps(d, indent=1),
        lambda d: json.dumps(d, separators=(",", ":")),
        lambda d: json.dumps(d, indent="\t", ensure_ascii=False),
    ],
    ids=["ray", "indented", "compact", "tabs-utf8"],
)
def test_big_summary_is_split_node_by_node_with_the_same_snapshot(dumps: Any) -> None:
    summary = _big_summary(40)
    body = dumps(summary).encode()
    assert len(body) > dashboard_decode.SMALL
    split = _split(body)
    assert split is not None, "fell back to decoding the whole document in one call"
    assert len(split["data"]["summary"]) == 120
    responses = cluster_responses()
    old = build_snapshot("u", _with(responses, json.loads(body)), 1.0)
    new = build_snapshot("u", _with(responses, decode_summary(body)), 1.0)
    assert new == old and len(new.nodes) == 123  # and the GCS's own three


def test_a_node_that_looks_like_a_node_start_inside_is_not_split_there() -> None:
    def mutate(i: int, e: dict[str, Any]) -> None:
        # Bytes that start a node, inside a node: in a nested list and in a string.
        e["agent"] = [{"now": 1}, {"now": 2, "x": '}, {"now": 3}]'}]
        e["hostname"] = f'h{i}", {{"now": 4}}, {{"now"'
        e["loadAvg"] = float("nan") if i == 3 else 0.5  # Python's JSON allows NaN; msgspec not

    summary = _big_summary(40, mutate)
    body = json.dumps(summary).encode()
    split = _split(body)
    assert split is not None and len(split["data"]["summary"]) == 120
    responses = cluster_responses()
    old = build_snapshot("u", _with(responses, json.loads(body)), 1.0)
    new = build_snapshot("u", _with(responses, decode_summary(body)), 1.0)
    assert new == old
    assert new.nodes[0].hostname.startswith("h0")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"data": {"summary": [{"now": 1}, {"now": 2',
        b'{"data": {"summary": [{"now": 1}, {"now": 2}]',
        b"<html>502 Bad Gateway</html>",
    ],
)
def test_not_json_raises_value_error(body: bytes) -> None:
    padded = body + b" " * dashboard_decode.SMALL  # big enough to try the node-by-node path
    for b in (body, padded):
        with pytest.raises(ValueError):
            decode_summary(b)


def test_big_summary_of_unexpected_layout_falls_back_to_one_decode() -> None:
    summary = _big_summary(40)
    summary["data"]["summary"][5] = "not a node"  # a node that does not start like the first
    body = json.dumps(summary).encode()
    assert _split(body) is None
    responses = cluster_responses()
    old = build_snapshot("u", _with(responses, json.loads(body)), 1.0)
    new = build_snapshot("u", _with(responses, decode_summary(body)), 1.0)
    assert new == old
