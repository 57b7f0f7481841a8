"""The Compare page's tables and charts: the per-image table (sorted, best / worst N, where A
beats B; a row click opens the image), the dataset metrics side by side, and the confusion
matrices whose cells list the images where that confusion happens most."""
from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from seglib import viz
from seglib.predict import ORDERS
from seglib.train.data import background_note
from seglib.viz import maps
from seglib.viz.compare_plots import confusion_figure, grouped_bars

from .compare import CELL, ORDER, Ctx, P, ensemble_description, kept, open_image, pair_pickers
from .compare_image import order_key

TABLE_GEN, CM_GEN = P + "table_gen", P + "cm_gen"
SHOW_N, PER_CLASS = P + "show_n", P + "per_class"
SHOW_CHOICES = [10, 25, 50, 100, "all"]
TOP_CONFUSIONS = 12


# --- per image ----------------------------------------------------------------------------------
def _on_row(key: str, ids: list[str]) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        open_image(ids[rows[0]])
        st.session_state[TABLE_GEN] = st.session_state.get(TABLE_GEN, 0) + 1


def per_image_section(ctx: Ctx) -> None:
    cmp = ctx.cmp
    orders = [k for k, (_, labels) in ORDERS.items() if cmp.has_labels or not labels]
    c1, c2, c3 = st.columns([4, 3, 4])
    with c1:
        a, b = pair_pickers(ctx)
    st.session_state[ORDER] = order_key(ctx)
    by = c2.selectbox("Order", orders, format_func=lambda k: ORDERS[k][0], **kept(ORDER, orders[0], orders),
                      help="Also the order of Previous / Next in the Images section")
    show = c3.segmented_control("Show the first", SHOW_CHOICES, required=True, format_func=str,
                                **kept(SHOW_N, 25, SHOW_CHOICES))
    per_class = c3.toggle("IoU per class", **kept(PER_CLASS, False))
    ranking = cmp.ranking(by, a, b)
    shown = ranking if show == "all" else ranking.head(int(show))
    table = cmp.per_image().loc[shown.index]
    keep = [c for c in table.columns if c.startswith("mIoU · ")]
    if per_class:
        keep += [c for c in table.columns if c.startswith("IoU ")]
    if not cmp.has_labels:
        keep = [c for c in table.columns if c.startswith("confidence · ")]
    if "agreement" in table:
        keep.append("agreement")
    rest = table[[c for c in keep if c != shown.name]]
    view = rest if by == "id" else pd.concat([shown.rename(_score_label(by, a, b)), rest], axis=1)
    view.index.name = "image_id"
    ids = list(view.index)
    key = f"{P}table_{st.session_state.get(TABLE_GEN, 0)}"
    st.caption(f"{len(ranking):,} images ranked · click a row to open the image · click a header to sort "
               "what is shown")
    config = {c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.3f")
              if c.startswith("mIoU · ") or c == "agreement" else st.column_config.NumberColumn(c, format="%.3f")
              for c in view.columns}
    st.dataframe(view, width="stretch", height=38 + 35 * min(len(view), 25), on_select=partial(_on_row, key, ids),
                 selection_mode="single-row", key=key, column_config=config)
    st.download_button("Per-image metrics (CSV, every image and column)", cmp.per_image().to_csv(),
                       "per-image-metrics.csv", "text/csv", icon=":material/download:", key=P + "dl_per_image")


def _score_label(by: str, a: str, b: str) -> str:
    return {"a_beats_b": f"{a} − {b} (mIoU)", "b_beats_a": f"{b} − {a} (mIoU)", "worst": f"mIoU · {a}",
            "best": f"mIoU · {a}", "disagreement": f"{a} ≠ {b} (pixels)", "least_agreement": "agreement",
            "least_confident": f"confidence · {a}", "id": "position"}[by]


# --- dataset ------------------------------------------------------------------------------------
def dataset_section(ctx: Ctx) -> None:
    cmp = ctx.cmp
    if cmp.has_labels:
        table = cmp.scores_table()
        metrics = table[["mIoU", "mIoU (no bg)", "pixel acc", "mean pixel acc", "Dice"]]
        st.dataframe(metrics.style.format("{:.4f}", na_rep="–").highlight_max(axis=0, color="#d7ecd9"),
                     width="stretch")
        st.caption(f"mIoU (no bg): {background_note(ctx.ds.class_map)}")
        _fitted_note(ctx)
        left, right = st.columns(2)
        left.plotly_chart(grouped_bars(metrics.T, ctx.colors, "Dataset metrics", percent=False), width="stretch",
                          key=P + "fig_metrics")
        ious = table[[c for c in table.columns if c.startswith("IoU ")]].T
        ious.index = [c.removeprefix("IoU ") for c in ious.index]
        right.plotly_chart(grouped_bars(ious, ctx.colors, "IoU per class", percent=False), width="stretch",
                           key=P + "fig_iou")
        st.download_button("Dataset metrics (CSV)", table.to_csv(), "dataset-metrics.csv", "text/csv",
                           icon=":material/download:", key=P + "dl_scores")
    else:
        agree = cmp.agreement() if len(cmp.model_names) >= 2 else None
        c = st.columns(3)
        if agree is not None:
            c[0].metric("Mean agreement of the runs", f"{agree.mean():.1%}", help="Share of pixels where every "
                        "run predicts the same class, averaged over the images")
            c[1].metric("Images under 90% agreement", f"{int((agree < 0.9).sum()):,} / {len(agree):,}")
        c[2].metric("Images", f"{len(cmp.ids):,}", help="No ground truth here: compare the predictions with "
                                                        "each other and with the labeled images' class shares")
    shares = cmp.class_shares()
    st.plotly_chart(grouped_bars(shares, ctx.colors, "Share of pixels per class: ground truth and predicted "
                                 "(log scale: rare classes stay visible)", log=True, height=380),
                    width="stretch", key=P + "fig_shares")
    never = [f"**{n}** never predicts *{c}*" for n in cmp.names for c in shares.index
             if shares.loc[c, n] == 0 and ("ground truth" not in shares or shares.loc[c, "ground truth"] > 0)]
    if never:
        st.warning("; ".join(never), icon=":material/visibility_off:")


def _fitted_note(ctx: Ctx) -> None:
    for e in ctx.cmp.pred.ensembles:
        if e.fit_info:
            st.caption(f"**{e.name}**: {ensemble_description(e)}")


# --- confusion ------------------------------------------------------------------------------------
def _on_cell(chart_key: str, name: str) -> None:
    event = st.session_state.get(chart_key)
    points = event.selection.points if event and event.selection else []
    if points and points[0].get("customdata"):
        true, pred = points[0]["customdata"][:2]
        st.session_state[CELL] = (name, int(true), int(pred))
        st.session_state[CM_GEN] = st.session_state.get(CM_GEN, 0) + 1


def confusion_section(ctx: Ctx) -> None:
    cmp, lay = ctx.cmp, ctx.layout
    picked = st.session_state.get(CELL)
    if picked and picked[0] not in cmp.names:
        picked = None
    st.caption("Rows: the true class; columns: the predicted one; each row sums to 100%. Click a cell to see the "
               "images where that confusion happens most.")
    per_row = 3
    gen = st.session_state.get(CM_GEN, 0)
    for start in range(0, len(cmp.names), per_row):
        cols = st.columns(per_row)
        for col, name in zip(cols, cmp.names[start : start + per_row], strict=False):
            fig = confusion_figure(cmp.confusion(name), lay.class_names, name, classes=lay.scored,
                                   picked=picked[1:] if picked and picked[0] == name else None)
            key = f"{P}cm_{name}_{gen}"
            col.plotly_chart(fig, key=key, on_select=partial(_on_cell, key, name), selection_mode="points",
                             config={"displayModeBar": False})
    if picked:
        _confusion_images(ctx, *picked)


def _confusion_images(ctx: Ctx, name: str, true: int, pred: int) -> None:
    cmp, ds, lay = ctx.cmp, ctx.ds, ctx.layout
    t_name, p_name = lay.class_names[true], lay.class_names[pred]
    if true == pred:
        st.info(f"That cell counts the {t_name} pixels {name} gets right; pick a cell off the diagonal.")
        return
    top = cmp.top_confusions(name, true, pred, TOP_CONFUSIONS)
    st.subheader(f"{name}: true {t_name} predicted as {p_name}")
    if top.empty:
        st.success(f"{name} never predicts {p_name} on {t_name} pixels here.")
        return
    st.caption(f"The {len(top)} images with the most such pixels (magenta), most first.")
    cols = st.columns(4)
    for k, row in enumerate(top.itertuples()):
        image, truth, _ = ds.load_pair(row.image_id)
        if image is None or truth is None:
            continue
        where = (truth == true) & (cmp.mask(name, row.image_id) == pred)
        col = cols[k % 4]
        col.image(viz.thumbnail_pair(maps.highlight(image, where), None, 384)[0], width="stretch")
        col.button(f"{row.image_id} · {row.pixels:,} px ({row.share:.0%} of its {t_name})", key=f"{P}open_{k}",
                   on_click=open_image, args=(row.image_id,), type="tertiary", icon=":material/open_in_new:")
