"""What the composer suggests: the models a backend offers on a node, and the nodes to pin runs to.

The composer asks `PromptService.models` and `PromptService.nodes` (blocking: a small task on a
node, GCS calls) in thread workers. `looking_up` and `models_hint` word the line under the form;
`node_options` labels the node picker's entries.
"""

from __future__ import annotations

from collections.abc import Sequence

from raytui.backends.service import NodeChoice

ANY_NODE = "any"

ModelsKey = tuple[str, str, str]
"""(backend, node id or "", endpoint or ""): the form fields a model list depends on."""


def looking_up(backend: str) -> str | None:
    """The hint while a model list loads; None for a backend that has no list to load."""
    if backend == "vllm":
        return "looking up the models loaded in vLLM engines…"
    if backend == "ollama":
        return "looking up the node's Ollama models…"
    return None


def models_hint(backend: str, names: Sequence[str]) -> str:
    """The hint once a model list came."""
    if backend == "vllm":
        if names:
            return (
                "loaded in vLLM engines: "
                + ", ".join(names)
                + " (another model starts an engine: minutes)"
            )
        return "no vLLM engine running: the first prompt loads the model (minutes)"
    if names:
        return "models: " + ", ".join(names)
    return "no models reported: type the model name"


def node_options(nodes: Sequence[NodeChoice]) -> list[tuple[str, str]]:
    """The node picker's entries: any node, then each alive node with its GPUs."""
    options = [("any node", ANY_NODE)]
    for n in nodes:
        if n.alive:
            label = f"{n.hostname or n.ip} {n.node_id[:8]} ({n.gpus_total:g} GPU)"
            options.append((label, n.node_id))
    return options
