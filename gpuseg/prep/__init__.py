"""Cleaning, per-customer features and scaling."""

from .clean import CleanedData, clean
from .features import CustomerFeatures, customer_features
from .scale import FeatureScaler

__all__ = ["CleanedData", "clean", "CustomerFeatures", "customer_features", "FeatureScaler"]
