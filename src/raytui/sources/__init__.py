"""Where data comes from (Ray dashboard, NVML, the proxy daemon), returned as model snapshots. No Textual."""
