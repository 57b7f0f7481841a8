"""Home: what the dataset holds, its class balance, a few samples, and its validation report."""
import pandas as pd
import streamlit as st

from seglib import viz
from seglib.stats import SIZES_SHOWN, describe_sizes
from seglib.viz import plots
from ui import banners, class_fix, data, nav
from ui import dataset_grid as grid

nav.require_entry()
loaded = data.current()
if loaded is None:
    st.stop()
ds, stats = loaded.ds, loaded.stats

st.title(ds.name)
st.caption(f"`{ds.source}` · {ds.kind} dataset · {ds.encoding} masks · "
           f"class map {'made up (no classes.json)' if ds.class_map.inferred else 'given'}")
class_fix.saved_note()
banners.dataset_banners(loaded)  # the dataset's own problems first: one may explain every file's warning
class_fix.class_file_fix(loaded)

# Pixels the class map lacks are a row of their own: the shares add up to all the labeled pixels.
per_class = stats.per_class(unknown_name=f"Unknown {'colours' if ds.encoding == 'rgb' else 'values'}")
n_labeled = int(stats.labeled.sum())
c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{len(stats.ids):,}")
c2.metric("Labeled", f"{n_labeled:,}")
# Without a mask or a classes.json the class map is made up from nothing: no count to show.
c3.metric("Classes", len(ds.class_map) if n_labeled or not ds.class_map.inferred else "–")
c4.metric("Problems", len(ds.report), help="Files left out or with warnings; see the report below")

if not stats.ids:
    st.error(ds.empty_reason(), icon=":material/image_not_supported:")
elif not n_labeled:
    st.info(f"None of the {len(stats.ids):,} images has a mask: there is no class balance to show and nothing to "
            "train on. Masks go in a `masks/` folder beside `images/`, with the same file names.",
            icon=":material/hide_image:")
else:
    if not stats.scored_pixels and not stats.unknown_pixels:  # unknown pixels: the banner above says why
        ignored = ", ".join(c.name for c in ds.class_map if c.ignore) or "none"
        st.warning(f"Every labeled pixel is of an ignored class ({ignored}): no pixel is scored or learned from.",
                   icon=":material/warning:")
    left, right = st.columns([1, 1])
    with left:
        st.plotly_chart(plots.class_share_figure(per_class), width="stretch")
    with right:
        table = per_class.assign(share=per_class["pixel_fraction"]).drop(columns=["pixel_fraction", "color"])
        if not table["ignore"].any():
            table = table.drop(columns=["ignore"])
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0, max_value=1.0),
            "pixels": st.column_config.NumberColumn(format="localized"),
            "images_with_class": st.column_config.NumberColumn("images", help="Labeled images that contain the class")})

if stats.ids:
    sizes = stats.sizes_largest_first()
    st.caption(describe_sizes(sizes))
    if len(sizes) > SIZES_SHOWN:  # the caption names the largest: every size is in the table
        with st.expander(f"All {len(sizes)} image sizes"):
            st.dataframe(sizes.rename(columns={"count": "images"}), hide_index=True, width="stretch")
    st.subheader("Samples")
    opacity = st.slider("Mask opacity", 0.0, 1.0, 0.45, 0.05, key="home_opacity")
    sample_ids = ds.labeled_ids[:: max(1, len(ds.labeled_ids) // 8)][:8] or ds.ids[:8]
    cols = st.columns(4)
    # Cached like the Dataset grid's: a big photo is decoded reduced, once, and stays light in the browser.
    pictures = grid.thumbnails(loaded, sample_ids, viz.View(alpha=opacity), size=384)
    for k, (image_id, (data, _)) in enumerate(zip(sample_ids, pictures, strict=True)):
        cols[k % 4].image(data, caption=image_id, width="stretch")

st.subheader("Validation report")
if not ds.report:
    st.success("Every image and mask opened cleanly; no unknown classes.")
else:
    report = pd.DataFrame(ds.report.to_list(dataset_first=True))
    counts = report.groupby(["severity", "code"]).size().rename("files").reset_index()
    st.dataframe(counts, hide_index=True)
    st.dataframe(report[["severity", "file", "problem", "image_id"]], hide_index=True, width="stretch")
    st.download_button("Download report (CSV)", report.to_csv(index=False), f"{ds.name}-report.csv", "text/csv")
