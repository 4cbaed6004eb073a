"""The `ray start` the daemon runs for `raytui join`: its command line, environment and node ID."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raytui.model.overlay import WORKER_PORTS
from raytui.proxy.ray_node import NodePlan, read_node_id

OLD, NEW = "a" * 56, "b" * 56


def test_the_newest_node_of_a_shared_session_is_ours(tmp_path: Path) -> None:
    """After an outage the new node joins the cluster's same session dir, beside the old one's
    files: the newest file names the node running now."""
    session = tmp_path / "session_2026"
    session.mkdir()
    (tmp_path / "session_latest").symlink_to(session)
    for name in (f"metrics_export_port_{OLD}", f"dashboard_agent_listen_port_{OLD}"):
        (session / name).write_text("1")
        os.utime(session / name, (1000, 1000))
    (session / f"metrics_export_port_{NEW}").write_text("1")
    (session / "unrelated").write_text("1")
    assert read_node_id(tmp_path) == NEW
    assert read_node_id(tmp_path / "missing") is None


@pytest.mark.parametrize("head", [True, False])
def test_command_pins_ports_and_address(head: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYTUI_RAY_TEMP_DIR", "/tmp/rt-x")
    plan = NodePlan("head" if head else "worker", "100.64.0.7", "100.64.0.9:6379", None,
                    "tok", 2, None)  # fmt: skip
    cmd = plan.command()
    assert cmd[cmd.index("--node-ip-address") + 1] == "100.64.0.7"
    assert cmd[cmd.index("--temp-dir") + 1] == "/tmp/rt-x"
    assert cmd[cmd.index("--max-worker-port") + 1] == str(WORKER_PORTS[1])
    assert cmd[cmd.index("--num-gpus") + 1] == "2" and "--num-cpus" not in cmd
    assert ("--head" in cmd) == head and ("--address" in cmd) != head
    if head:
        assert cmd[cmd.index("--dashboard-host") + 1] == "100.64.0.7"


def test_environment_sets_auth_explicitly_and_drops_what_would_break_a_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "someone-elses")
    with_token = NodePlan("worker", "100.64.0.7", "100.64.0.9:6379", "p", "tok", None, None)
    env = with_token.env()
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == "tok"
    assert "RAY_ADDRESS" not in env and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in env
    without = NodePlan("worker", "100.64.0.7", "100.64.0.9:6379", "p", None, None, None).env()
    assert without["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in without
