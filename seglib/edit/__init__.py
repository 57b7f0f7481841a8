"""Mask editing: the geometry and raster operations behind the Label page's editor, and (from
:mod:`.regions`, :mod:`.assist` and :mod:`.label_next`) model-assisted correction and labeling.

- :mod:`.raster`: Fabric.js objects drawn on a canvas (the editor's ``streamlit-drawable-canvas``)
  turned into image-space geometry, and the editor's tools applied to a uint8 class-id mask
  exactly: brush and eraser strokes, polygon fill, flood fill, the ignore class. Class ids come
  from the tool, never from the colours the canvas shows; only the box an object touches is rasterised.
- :mod:`.session`: the working mask with exact undo/redo steps (each the box it changed), saving,
  queues; :mod:`.canvas_picture`: the canvas background, redrawn only where the mask changed.
- :mod:`.regions`: where a prediction disagrees with a label (connected regions, largest first)
  and accepting one, or the whole prediction.
- :mod:`.assist`: one image's prediction by a trained run or an ensemble.
- :mod:`.label_next`: unlabeled images ranked for labeling.
- One-click segmentation: :mod:`.sam` (SAM 2 through transformers, from the Hugging Face cache),
  :mod:`.superpixels` (SLIC, Felzenszwalb), :mod:`.wand` (fill by colour), :mod:`.proposal` (a
  mask shown before it is applied) and :mod:`.clicks` (the standard click simulator, NoC@85/90).

Nothing here imports streamlit.
"""
