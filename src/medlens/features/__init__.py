"""Features for classical machine learning: deep (a CNN's pooled penultimate layer) and
handcrafted (radiomics-style first-order, shape and texture), feature selection, and
scikit-learn classifier pipelines on top of them.
"""

from medlens.features.classical import (
    CLASSIFIERS,
    hybrid_pipeline,
    make_classifier,
    make_feature_pipeline,
)
from medlens.features.deep import extract_deep_features, features_from_model
from medlens.features.feature_set import FeatureSet
from medlens.features.handcrafted import FAMILIES, handcrafted_features
from medlens.features.handcrafted_set import (
    handcrafted_feature_matrix,
    handcrafted_features_from_data,
)
from medlens.features.selection import SELECTORS, make_selector

__all__ = [
    "CLASSIFIERS",
    "FAMILIES",
    "SELECTORS",
    "FeatureSet",
    "extract_deep_features",
    "features_from_model",
    "handcrafted_feature_matrix",
    "handcrafted_features",
    "handcrafted_features_from_data",
    "hybrid_pipeline",
    "make_classifier",
    "make_feature_pipeline",
    "make_selector",
]
