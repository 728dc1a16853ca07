"""Segment intelligence: profiles, confidence, persona names, RFM scores, explanations,
actions and recommendations (:func:`segment_insights` runs them all)."""

from .actions import segment_actions, suggest_actions
from .confidence import LOW_CONFIDENCE, confidence_meaning, confidence_summary, segment_confidence
from .explain import explain_segments
from .insights import event_segments, segment_insights
from .naming import PERSONA_RULES, name_segments
from .profiles import (
    activity_grid,
    order_by_size,
    placeholder_names,
    segment_profiles,
    segment_summary,
    size_order,
    summary_table,
    top_shares,
)
from .recommend import segment_recommendations
from .rfm import RFM_SEGMENTS, rfm_crosstab, rfm_scores

__all__ = [
    "LOW_CONFIDENCE",
    "PERSONA_RULES",
    "RFM_SEGMENTS",
    "activity_grid",
    "confidence_meaning",
    "confidence_summary",
    "event_segments",
    "explain_segments",
    "name_segments",
    "order_by_size",
    "placeholder_names",
    "rfm_crosstab",
    "rfm_scores",
    "segment_actions",
    "segment_confidence",
    "segment_insights",
    "segment_profiles",
    "segment_recommendations",
    "segment_summary",
    "size_order",
    "suggest_actions",
    "summary_table",
    "top_shares",
]
