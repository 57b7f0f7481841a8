"""seglib: review, clean, augment, train and compare semantic-segmentation datasets and models.

The library behind the Streamlit app; it never imports streamlit, and importing it changes no
setting: programs that use it set ``NO_ALBUMENTATIONS_UPDATE=1`` and ``HF_HUB_OFFLINE=1`` themselves
if they want no network at run time (the app, the CLI and the tests do).
"""
from .data import ClassMap, DatasetError, open_dataset, write_demo

__version__ = "0.1.0"
__all__ = ["ClassMap", "DatasetError", "open_dataset", "write_demo", "__version__"]
