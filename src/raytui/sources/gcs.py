"""What a Ray GCS tells a console that has only its address: where the head's dashboard is.

`dashboard_url_from_gcs(address)` checks the port answers first (Ray's client waits ~40 s for an
unreachable GCS), then asks the GCS's internal KV within a bound (`ray_driver.call_within`).
"""

from __future__ import annotations

from typing import Any

from raytui.errors import AuthenticationFailed, ClusterUnreachable, describe
from raytui.ray_local import port_open, split_hostport
from raytui.sources.address import DASHBOARD_PORT, Address
from raytui.sources.auth_token import require_token_if_token_mode
from raytui.sources.dashboard_client import token_hint
from raytui.sources.machine import is_loopback, is_this_machine
from raytui.sources.ray_driver import call_within, prepare_ray_import


def dashboard_url_from_gcs(gcs: Address, timeout: float = 5.0) -> str:
    """Ask the GCS where the head's dashboard listens. Needs the token on auth clusters."""
    assert gcs.host is not None and gcs.port is not None
    if not port_open(gcs.host, gcs.port, timeout=min(timeout, 3.0)):
        # Checked first: Ray's client waits ~40 s for an unreachable GCS.
        raise ClusterUnreachable(f"cannot reach the Ray GCS at {gcs.hostport}")
    require_token_if_token_mode(f"the Ray GCS at {gcs.hostport}")
    prepare_ray_import()
    from ray._raylet import GcsClient  # type: ignore[attr-defined]
    from ray.exceptions import AuthenticationError

    def ask() -> Any:
        client = GcsClient(address=gcs.hostport)
        return client.internal_kv_get(b"dashboard", namespace=b"dashboard", timeout=timeout)

    limit = timeout + 5.0  # Ray's client retries a port that is not a GCS for ~40 s
    try:
        value = call_within(ask, limit)
    except TimeoutError:
        raise ClusterUnreachable(
            f"the Ray GCS at {gcs.hostport} did not answer within {limit:g} s (asked for the "
            "dashboard's address); is that port a Ray GCS?"
        ) from None
    except AuthenticationError:
        raise AuthenticationFailed(
            f"the Ray GCS at {gcs.hostport} rejected the request: auth token missing or wrong; "
            f"{token_hint()}"
        ) from None
    except Exception as exc:  # any GCS failure means the same to the user
        raise ClusterUnreachable(
            f"cannot read the dashboard address from the Ray GCS at {gcs.hostport}: "
            f"{describe(exc, 'line')}"
        ) from None
    if not value:
        raise ClusterUnreachable(
            f"the Ray cluster at {gcs.hostport} has no dashboard (started without "
            "--include-dashboard?)"
        )
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.removeprefix("http://").rstrip("/")
    host, port = split_hostport(text)
    if host in ("0.0.0.0", "::") or (is_loopback(host) and not is_this_machine(gcs.host)):
        host = gcs.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port or DASHBOARD_PORT}"
