"""Loupe's vision library: plain Python, numpy and torch, no Django.

`serving.predictor.Predictor.predict(image) -> types.Prediction` is the contract the rest of Loupe
relies on; see docs/model.md for a map of the modules.
"""
