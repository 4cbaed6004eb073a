"""Widgets: receive snapshots, render them, post messages. No Ray calls."""
