"""Label: fix a mask in the browser. Paint with a brush, erase, fill a polygon or a connected
region, set a region to the ignore class; one-click tools (SAM 2 clicks and boxes, superpixels,
snap to a trained run's prediction); undo and redo; save as a new version (the file is never
written); a trained run's prediction to accept region by region; the image's history, diff and
revert; the unlabeled images to label next, least sure first. Other pages link here with
``?image=ID``."""
import streamlit as st

from ui import click_tools, data, label_next, nav
from ui import edit_assist as assist
from ui import editor as ed

nav.require_entry()
loaded = data.with_images()

st.title("Label")
ed.count_run()
ed.show_flash()
image_id = ed.choose_image(loaded)
work = ed.work_for(loaded, image_id)
prev_id, next_id = ed.navigation(loaded, image_id, work)
st.session_state.setdefault(ed.SECTION, "Edit")
section = st.segmented_control("Section", ["Edit", "History", "Label next"], key=ed.SECTION, required=True,
                               label_visibility="collapsed")
if section == "Label next":
    label_next.section(loaded)
    st.stop()
if section == "History":
    ed.history_section(loaded, work)
    st.stop()



@st.fragment
def editor(loaded, work, next_id):
    """The tools, the palette, the canvas, the save row and model assist: a stroke reruns only these."""
    left, right = st.columns([4, 1])
    with left:
        tool = ed.toolbar(loaded)
    with right:
        class_id, radius = ed.palette(loaded, work, tool)
        click_tools.options(loaded, work, tool)
    with left:
        ed.canvas(loaded, work, tool, class_id, radius, click_tools.Hooks(loaded))
        click_tools.proposal_row(loaded, work, tool, class_id)
        ed.save_row(loaded, work, next_id)
    assist.assist_panel(loaded, work)


editor(loaded, work, next_id)
