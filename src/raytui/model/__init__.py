"""Frozen value objects shared by every layer. No I/O, no third-party imports."""
