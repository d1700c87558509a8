"""Data set formats, each one module that reads and writes it (`coco`, `voc`, `yolo`, `labelstudio`;
`masks` and `folders` are read only), on the shared rules of `reading` and `writing`; `registry`
names them all and `services` runs an export. See docs/data-formats.md."""
