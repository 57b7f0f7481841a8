"""Dataset formats, loading, validation and the demo-data generator.

Modules: :mod:`.dataset` (the interface every format implements), :mod:`.folder` (folders of
image and mask files), :mod:`.npz` (one .npz file), :mod:`.open` (``open_dataset``), :mod:`.io`
(reading and decoding files), :mod:`.classmap`, :mod:`.report`, :mod:`.demo`, :mod:`.upload`,
:mod:`.torch_dataset` (the training Dataset), :mod:`.roots` (the folders the app may open).
"""
from .classmap import UNKNOWN_INDEX, ClassInfo, ClassMap
from .dataset import DatasetError, SegDataset, npz_image_id
from .demo import write_demo
from .folder import FolderDataset
from .io import ReadError, read_image
from .npz import NpzDataset
from .open import open_dataset
from .report import Problem, Report

__all__ = ["UNKNOWN_INDEX", "ClassInfo", "ClassMap", "DatasetError", "FolderDataset", "NpzDataset",
           "SegDataset", "npz_image_id", "open_dataset", "write_demo", "ReadError", "read_image",
           "Problem", "Report"]
