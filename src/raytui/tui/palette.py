"""The command palette (`:` or ctrl+p), k9s style: `nodes`, `gpus`, `jobs`, `node <host>`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from raytui.tui.messages import OpenNode
from raytui.tui.state import UiState

# (name, help, action run on the app)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    (":nodes", "node list with the GPUs of the highlighted node", "switch_view('nodes')"),
    (":gpus", "every GPU of every node", "switch_view('gpus')"),
    (":jobs", "jobs and task counts", "switch_view('jobs')"),
    (":tasks", "tasks by function and state; filter, drill into tasks", "switch_view('tasks')"),
    (":actors", "actors: class, name, state, node, GPUs; logs, kill", "switch_view('actors')"),
    (":submit-job", "submit a Ray job: entrypoint, working dir, env, GPUs", "open_job_submit"),
    (":filter", "filter nodes by id, host, IP or state", "filter"),
    (":refresh", "poll the cluster now", "refresh"),
    (":prompt", "compose prompts and stream answers from the cluster's GPUs", "open_composer"),
    (":history", "past prompts and answers: search, copy, re-send", "open_history"),
    (":engines", "vLLM engines holding models on GPUs: stop one to free them", "open_engines"),
    (":peers", "peer links and the proxy daemon", "toggle_peers"),
    (":help", "keys and what they do", "help"),
    (":quit", "quit raytui (stops an embedded Ray)", "quit"),
)

MAX_NODE_HITS = 50


class RaytuiCommands(Provider):
    def _run(self, action: str) -> Callable[[], object]:
        return partial(self.app.run_action, action)

    def _open(self, node_id: str) -> Callable[[], object]:
        return partial(self.app.post_message, OpenNode(node_id))

    def _nodes(self) -> list[tuple[str, str, str]]:
        state = getattr(self.app, "state", None)
        if not isinstance(state, UiState) or state.snapshot is None:
            return []
        out = []
        for node in state.snapshot.nodes:
            label = f":node {node.hostname or node.ip} {node.short_id}"
            what = "head node" if node.is_head else "node"
            out.append((label, f"{what} detail · {node.ip} · {node.state.value}", node.node_id))
        return out

    async def discover(self) -> Hits:
        for name, help_text, action in COMMANDS:
            yield DiscoveryHit(name, self._run(action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query.lstrip(":") if query.startswith(":") else query)
        for name, help_text, action in COMMANDS:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), self._run(action), help=help_text)
        shown = 0
        for label, help_text, node_id in self._nodes():
            if shown >= MAX_NODE_HITS:
                break
            score = matcher.match(label)
            if score > 0:
                shown += 1
                yield Hit(score, matcher.highlight(label), self._open(node_id), help=help_text)
