"""Dataset formats, loading, validation and the demo-data generator."""
from .classmap import UNKNOWN_INDEX, ClassInfo, ClassMap
from .dataset import DatasetError, FolderDataset, NpzDataset, SegDataset, npz_image_id, open_dataset
from .demo import write_demo
from .io import ReadError, read_image
from .report import Problem, Report

__all__ = ["UNKNOWN_INDEX", "ClassInfo", "ClassMap", "DatasetError", "FolderDataset", "NpzDataset",
           "SegDataset", "npz_image_id", "open_dataset", "write_demo", "ReadError", "read_image",
           "Problem", "Report"]
