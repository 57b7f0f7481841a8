"""seglib: review, clean, augment, train and compare semantic-segmentation datasets and models.

The library behind the Streamlit app; it never imports streamlit.
"""
import os

# No network at run time: albumentations' update check and the HF hub stay quiet.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .data import ClassMap, DatasetError, open_dataset, write_demo  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ClassMap", "DatasetError", "open_dataset", "write_demo", "__version__"]
