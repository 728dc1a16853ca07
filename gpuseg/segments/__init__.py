"""Segment intelligence: profiles (names, rules and actions come later)."""

from .confidence import LOW_CONFIDENCE, confidence_meaning, confidence_summary, segment_confidence
from .profiles import order_by_size, placeholder_names, segment_profiles

__all__ = ["LOW_CONFIDENCE", "confidence_meaning", "confidence_summary", "order_by_size", "placeholder_names", "segment_confidence", "segment_profiles"]
