"""The filter line of the Tasks and Actors views: `state:FAILED job:02000000 node:abc name:f`.

Parsed here (no I/O) into the `TaskFilter` / `ActorFilter` the dashboard applies server side.
Words are `key:value`; a bare word is a name. The dashboard compares with `=`, so a node given
as a prefix or a hostname is resolved to its full ID against the current snapshot first.
Bad input raises UsageError with one line that says what is allowed; nothing else changes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from raytui.errors import UsageError
from raytui.model.cluster import ClusterSnapshot
from raytui.model.workbench import ACTOR_STATES, TASK_STATES, ActorFilter, TaskFilter

TASK_KEYS = ("state", "job", "node", "name")
ACTOR_KEYS = ("state", "job", "node", "class", "name")

TASK_HINT = "state:FAILED job:02000000 node:HOST|ID name:FUNC"
ACTOR_HINT = "state:ALIVE class:CLASS name:NAME node:HOST|ID job:ID"


@dataclass(frozen=True, slots=True)
class Query:
    """The words of a filter line, by key (the last one wins); `text` is the normalised line."""

    terms: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        return dict(self.terms).get(key)

    @property
    def text(self) -> str:
        return " ".join(f"{k}:{shlex.quote(v)}" for k, v in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)


def parse(line: str, allowed: tuple[str, ...], states: tuple[str, ...]) -> Query:
    """`key:value` words; a bare word is `name:word`. Raises UsageError on a bad word."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"filter: {exc}") from None
    terms: dict[str, str] = {}
    for word in words:
        key, colon, value = word.partition(":")
        if not colon:
            key, value = "name", word
        key = key.strip().lower()
        value = value.strip()
        if key not in allowed:
            raise UsageError(f"filter: unknown key {key!r}; use {', '.join(allowed)}")
        if not value:
            raise UsageError(f"filter: {key}: needs a value ({key}:…)")
        if key == "state":
            value = value.upper()
            if value not in states:
                raise UsageError(f"filter: no state {value!r}; one of {', '.join(states)}")
        terms[key] = value
    return Query(tuple(terms.items()))


def resolve_node(snapshot: ClusterSnapshot | None, text: str) -> str:
    """A full node ID for a node ID, an ID prefix, a hostname or an IP; raises UsageError."""
    nodes = snapshot.nodes if snapshot is not None else ()
    exact = [n for n in nodes if text in (n.node_id, n.hostname, n.ip)]
    found = exact or [n for n in nodes if n.node_id.startswith(text)]
    if len(found) == 1:
        return found[0].node_id
    if len(found) > 1:
        raise UsageError(f"filter: node {text!r} matches {len(found)} nodes; give more of its ID")
    if len(text) == 56 and all(c in "0123456789abcdef" for c in text):
        return text  # a full ID of a node the snapshot does not list (any more)
    raise UsageError(f"filter: no node {text!r} (a node ID, its first characters, host or IP)")


def _common(q: Query, snapshot: ClusterSnapshot | None) -> dict[str, str | None]:
    """The keys tasks and actors share: state, job, node (resolved against the snapshot)."""
    node = q.get("node")
    return {
        "state": q.get("state"),
        "job_id": q.get("job"),
        "node_id": resolve_node(snapshot, node) if node else None,
    }


def task_filter(line: str, snapshot: ClusterSnapshot | None = None) -> tuple[Query, TaskFilter]:
    q = parse(line, TASK_KEYS, TASK_STATES)
    return q, TaskFilter(**_common(q, snapshot), func_or_class_name=q.get("name"))


def actor_filter(line: str, snapshot: ClusterSnapshot | None = None) -> tuple[Query, ActorFilter]:
    q = parse(line, ACTOR_KEYS, ACTOR_STATES)
    return q, ActorFilter(**_common(q, snapshot), class_name=q.get("class"), name=q.get("name"))
