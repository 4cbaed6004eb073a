"""The composer's model pulls: a run failed because its model is missing on its node; pull it there.

`panes_to_pull(panes, focused)` picks the pull the user asked for (the focused pane's, else the
first offered) and every pane that shares it (same model, node and endpoint: one pull serves them
all). `pull_into(service, key, panes)` (an async worker) streams the pull's progress into those
panes and ends each with done or the error; leaving early (esc cancels the worker) stops the pull
on the node. Errors are events, never raised, except the cancellation itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from raytui import debuglog
from raytui.backends.service import PromptService
from raytui.errors import describe
from raytui.model.prompts import Done, Failed, FailureKind
from raytui.tui.widgets.answer_pane import AnswerPane

PullKey = tuple[str, str, str | None]
"""(model, node id, endpoint as the node saw it)."""


def panes_to_pull(
    panes: Sequence[AnswerPane], focused: object
) -> tuple[PullKey, list[AnswerPane]] | None:
    """The pull to start and the panes it serves; None when no pane offers one."""
    offered = [p for p in panes if p.pull_offered]
    if not offered:
        return None
    pane = focused if isinstance(focused, AnswerPane) and focused.pull_offered else offered[0]
    key = pane.pull_key_tuple()
    if key is None:
        return None
    return key, [p for p in offered if p.pull_key_tuple() == key]


async def pull_into(service: PromptService, key: PullKey, panes: Sequence[AnswerPane]) -> None:
    """Run the pull, feeding every pane its events, until it ends (see the module docstring)."""
    model, node_id, endpoint = key
    pulls = service.pull(model, node_id, endpoint)
    try:
        async for event in pulls:
            for pane in panes:
                pane.pull_event(event)
            if isinstance(event, Done | Failed):
                break
        else:
            for pane in panes:
                pane.pull_event(Failed("the pull ended without a result"))
    except asyncio.CancelledError:
        for pane in panes:
            pane.pull_event(Failed("stopped", FailureKind.CANCELLED))
        raise
    except Exception as exc:
        debuglog.report("composer._pull", exc)
        for pane in panes:
            pane.pull_event(Failed(f"the pull broke: {describe(exc)}"))
    finally:
        aclose = getattr(pulls, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()  # stops the pull on the node if we left early
