"""Synthetic phone-screen units, as the line's camera would photograph them (docs/synthetic.md):
`config` (what to draw), `scene` (the photograph; `generate_unit`), `defects`, `drawing`, `writing`
(`write_dataset`). Plain numpy, scipy and Pillow; deterministic from (seed, index)."""
