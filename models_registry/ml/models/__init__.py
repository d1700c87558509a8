"""The two models a bundle can hold: `defectnet` (supervised) and `patchcore` (cold start from
defect-free images), on the shared pretrained `backbone`."""
