"""Mask editing: the geometry and raster operations behind the Label page's editor, and (from
:mod:`.regions` and :mod:`.assist`) model-assisted correction.

- :mod:`.raster`: Fabric.js objects drawn on a canvas (the editor's ``streamlit-drawable-canvas``)
  turned into image-space geometry, and the editor's tools applied to a uint8 class-id mask
  exactly: brush and eraser strokes, polygon fill, flood fill, the ignore class. Class ids come
  from the tool, never from the colours the canvas shows.

Pure numpy/OpenCV; nothing here imports streamlit.
"""
