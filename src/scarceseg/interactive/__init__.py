"""Clicks (robot user), hint maps, refiners, session with undo."""
