"""Errors reach the user as one line, whoever caught them: `raytui.errors.describe` in each of
its forms, and a composer whose node list fails says so instead of dropping it."""

from __future__ import annotations

import httpx
import trio

from raytui.backends.service import NodeChoice
from raytui.errors import ClusterUnreachable, describe
from raytui.tui.screens.composer import ComposerScreen
from tests.support.composer_standin import StandInService, app_with_service
from tests.support.tui_fakes import until
from tests.support.waiting import Notices


def test_describe_user_form_keeps_raytui_errors_and_marks_the_rest_unexpected() -> None:
    assert describe(ClusterUnreachable("no dashboard at x")) == "no dashboard at x"
    assert describe(ClusterUnreachable()) == "ClusterUnreachable"
    assert describe(KeyError("k")) == "unexpected error: KeyError: 'k'"


def test_describe_line_and_typed_forms_keep_the_first_line() -> None:
    assert describe(ValueError("first\nsecond"), "line") == "first"
    assert describe(ValueError(""), "line") == "ValueError"
    assert describe(ValueError("first\nsecond"), "typed") == "ValueError: first"
    assert describe(ValueError(""), "typed") == "ValueError"
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    assert describe(refused, "line") == "connection refused"
    assert describe(httpx.ConnectError("name not known"), "line") == "name not known"


def test_describe_chain_form_finds_the_deepest_message_and_its_address() -> None:
    try:
        try:
            raise trio.TooSlowError
        except trio.TooSlowError as inner:
            raise OSError("failed to dial to /ip4/10.0.0.9/tcp/4001") from inner
    except OSError as exc:
        assert describe(exc, "chain") == "timed out (/ip4/10.0.0.9/tcp/4001)"
    assert describe(ConnectionRefusedError(111, "x"), "chain") == "connection refused"
    muxer = RuntimeError("failed to upgrade mux")
    assert "allow-list" in describe(muxer, "chain")


class NodesFail(StandInService):
    """The stand-in service whose node listing fails (as when the GCS is gone)."""

    def nodes(self) -> list[NodeChoice]:
        raise ClusterUnreachable("cannot list Ray nodes: GCS gone")


async def test_composer_shows_a_failed_node_list_with_a_stand_in_service() -> None:
    app = app_with_service(NodesFail({}, models=["llama3"]))
    notices = Notices(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1, what="first snapshot")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), what="composer")
        await notices.next(pilot, "cannot list the nodes: cannot list Ray nodes: GCS gone", 0)
