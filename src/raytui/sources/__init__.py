"""Where data comes from (Ray dashboard, NVML, the proxy daemon), as model snapshots.

No Textual here.
"""
