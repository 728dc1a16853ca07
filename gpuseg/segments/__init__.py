"""Segment intelligence: profiles (names, rules and actions come later)."""

from .profiles import order_by_size, placeholder_names, segment_profiles

__all__ = ["order_by_size", "placeholder_names", "segment_profiles"]
