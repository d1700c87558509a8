"""From a model bundle to a `Prediction`: the bundle folder, the served graph and its ONNX export,
the frame check, post-processing and the predictors."""
