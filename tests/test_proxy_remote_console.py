"""A remote console through the tunnel: the session's Ray head exposed by one daemon, reached
through another; `raytui status --via PEER` shows the head's nodes with the token that the head's
daemon handed over (the console process has no token of its own)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from urllib.parse import urlparse

import pytest

from tests.proxy_support.daemons import Daemon, pair_up
from tests.support.ray_cluster import RayTestCluster

pytestmark = [pytest.mark.proxy, pytest.mark.ray, pytest.mark.multinode]


def test_status_via_peer_shows_the_heads_nodes(ray_cluster: RayTestCluster) -> None:
    console, head = Daemon("con"), Daemon("head")
    home = tempfile.mkdtemp(prefix="rthome", dir="/tmp")  # no ~/.ray/auth_token in there
    head.env.update(RAY_AUTH_TOKEN=ray_cluster.token)  # the head's daemon may read the token
    try:
        console.start()
        head.start()
        pair_up(console, head)
        dash = urlparse(ray_cluster.dashboard_url)
        head.control.expose("ray-dashboard", f"{dash.hostname}:{dash.port}")
        head.control.expose("ray-gcs", ray_cluster.gcs_address)
        if ray_cluster.client_port:
            head.control.expose("ray-client", f"{dash.hostname}:{ray_cluster.client_port}")
        head.control.set_share_token(True)

        endpoints = console.control.console("head")
        assert endpoints.token == ray_cluster.token
        assert urlparse(endpoints.dashboard_url).hostname in ("127.0.0.3", "127.0.0.1")
        assert endpoints.client_address.startswith("ray://")

        env = {**console.env, "HOME": home}
        for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
            env.pop(key, None)
        out = subprocess.run(
            [sys.executable, "-m", "raytui", "status", "--via", "head", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        alive = {n["node_id"] for n in doc["nodes"] if n["state"] == "ALIVE"}
        assert alive == ray_cluster.node_ids()
        status = console.status()
        assert status.peers[0].bytes_in > 0
    finally:
        shutil.rmtree(home, ignore_errors=True)
        console.cleanup()
        head.cleanup()
