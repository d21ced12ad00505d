"""One reader module per on-disk format; each has ``detect(path) -> bool`` and
``open(path, frames, **options) -> PosedDataset``. :mod:`locus_core.data.detect` picks one."""
