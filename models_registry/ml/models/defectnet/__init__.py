"""DefectNet, the supervised model: its `network`, training `targets` and `training` loop."""
