"""Augment: build an albumentations pipeline, preview it on image + mask, save it for training,
and preview class rebalancing as the training sampler will see it."""
import streamlit as st

from ui import augment as ui_aug
from ui import data, nav

nav.require_entry()
loaded = data.with_images()
ds, stats = loaded.ds, loaded.stats
ids = ds.labeled_ids
if not ids:
    st.warning("This dataset has no labeled images: there is nothing to augment.")
    st.stop()
image_hw = ds.image(ids[0]).shape[:2]
ui_aug.init(image_hw)

st.title("Augment")
st.caption("Spatial transforms must move the mask with the image; pixel transforms must leave it alone. "
           "Pipelines are saved in albumentations' own format for training.")

left, right = st.columns([2, 5], gap="large")
with left:
    st.subheader("Pipeline")
    steps = ui_aug.pipeline_editor(image_hw)
    st.divider()
    ui_aug.save_load_panel(steps)
with right:
    t_preview, t_code, t_balance = st.tabs(["Preview", "Python code & file", "Class rebalancing"])
    with t_preview:
        chosen, draws, seed, opacity = ui_aug.preview_controls(ids)
        plan = ui_aug.training_input(loaded)
        st.caption(ui_aug.training_caption(plan))
        prepare = policy = None
        if plan["mode"] != "full" and st.toggle(
                f"Draw after the training input ({ui_aug.input_words(plan)})", value=True, key="augment_as_training",
                help=f"The Train page's input setting for this dataset ({plan['why']})"):
            prepare, policy = ui_aug.input_preparer(loaded, plan, seed)
        ui_aug.preview_grid(loaded, chosen, steps, draws, seed, opacity, prepare, policy)
    with t_code:
        ui_aug.code_panel(steps, seed)
    with t_balance:
        ui_aug.rebalance_panel(stats, ids)
