"""Loupe's vision model: plain Python and torch, no Django.

`Predictor.predict(image) -> Prediction` is the contract the rest of Loupe relies on.
"""

from models_registry.ml.types import Prediction, Region

__all__ = ["Prediction", "Region"]
