"""Streamlit glue shared by the pages: session keys, cached loaders, widgets."""
