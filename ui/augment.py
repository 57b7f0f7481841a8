"""Augment page glue: the pipeline editor (widgets from seglib's registry), preview grid,
save/load, and the class-rebalancing panel. Session keys are prefixed ``augment_``."""
from __future__ import annotations

import streamlit as st

from seglib import augment, sampling, viz
from seglib.augment.registry import GROUPS, TRANSFORMS, Param, coerce
from seglib.viz import plots

STEPS = "augment_steps"          # list of {"uid", "name", "params", "p"}
NEXT_UID = "augment_next_uid"    # int: widget keys of a step stay stable while it moves
SEED = "augment_seed"            # int: preview seed ("Draw again" adds one)
LOADED_NAME = "augment_loaded"   # str: the saved pipeline the steps came from


def init(image_hw: tuple[int, int]) -> None:
    if STEPS not in st.session_state:
        st.session_state[NEXT_UID] = 0
        set_steps(augment.default_steps(image_hw))
    st.session_state.setdefault(SEED, 0)
    st.session_state.setdefault(LOADED_NAME, "")


def set_steps(steps: list[dict]) -> None:
    """Replace the pipeline; new uids give the widgets fresh keys (their values come from the steps)."""
    out = []
    for s in steps:
        st.session_state[NEXT_UID] += 1
        out.append({**s, "params": dict(s.get("params", {})), "uid": st.session_state[NEXT_UID]})
    st.session_state[STEPS] = out


def current_steps() -> list[dict]:
    return [{k: v for k, v in s.items() if k != "uid"} for s in st.session_state[STEPS]]


# --- widgets -------------------------------------------------------------------------------
def _param_widget(prm: Param, value, key: str):
    label, helptext = prm.name.replace("_", " "), prm.help or None
    if prm.kind in ("frange", "irange"):
        cast = float if prm.kind == "frange" else int
        lo, hi = cast(min(prm.lo, value[0])), cast(max(prm.hi, value[1]))
        step = cast(prm.step or (0.01 if cast is float else 1))
        return tuple(st.slider(label, lo, hi, (cast(value[0]), cast(value[1])), step, key=key, help=helptext))
    if prm.kind == "float":
        lo, hi = float(min(prm.lo, value)), float(max(prm.hi, value))
        return st.slider(label, lo, hi, float(value), float(prm.step or 0.01), key=key, help=helptext)
    if prm.kind == "int":
        return int(st.number_input(label, int(prm.lo), int(max(prm.hi, value)), int(value), int(prm.step or 1),
                                   key=key, help=helptext))
    if prm.kind == "bool":
        return st.checkbox(label, bool(value), key=key, help=helptext)
    if prm.kind == "choice":
        labels, values = list(prm.choices), list(prm.choices.values())
        picked = st.selectbox(label, labels, index=values.index(value), key=key, help=helptext)
        return prm.choices[picked]
    c1, c2 = st.columns(2)  # pair: (height, width) or (rows, cols)
    a = c1.number_input(f"{label} (h)", int(prm.lo), int(max(prm.hi, value[0])), int(value[0]), int(prm.step or 1),
                        key=f"{key}_0", help=helptext)
    b = c2.number_input(f"{label} (w)", int(prm.lo), int(max(prm.hi, value[1])), int(value[1]), int(prm.step or 1),
                        key=f"{key}_1")
    return (int(a), int(b))


def _move(k: int, delta: int) -> None:
    steps = st.session_state[STEPS]
    j = k + delta
    if 0 <= j < len(steps):
        steps[k], steps[j] = steps[j], steps[k]


def _remove(k: int) -> None:
    st.session_state[STEPS].pop(k)


def _step_editor(k: int, step: dict, n: int) -> None:
    spec = TRANSFORMS.get(step["name"])
    icon = ":material/open_with:" if spec is None or spec.spatial else ":material/contrast:"
    with st.expander(f"{k + 1}. **{step['name']}** · p {step['p']:.2f}", expanded=False, icon=icon):
        uid = step["uid"]
        step["p"] = st.slider("probability p", 0.0, 1.0, float(step["p"]), 0.05, key=f"augment_{uid}_p")
        kept = dict(step["params"])
        if spec is not None:
            if spec.note:
                st.caption(spec.note)
            for prm in spec.params:
                value = coerce(prm, kept.get(prm.name)) if prm.name in kept else None
                if value is not None:
                    step["params"][prm.name] = _param_widget(prm, value, f"augment_{uid}_{prm.name}")
                    kept.pop(prm.name)
        if kept:
            st.caption("Kept as loaded: " + ", ".join(f"`{k_}={v!r}`" for k_, v in kept.items()))
        c1, c2, c3 = st.columns(3)
        c1.button("Up", key=f"augment_{uid}_up", on_click=_move, args=(k, -1), disabled=k == 0,
                  icon=":material/arrow_upward:", width="stretch")
        c2.button("Down", key=f"augment_{uid}_down", on_click=_move, args=(k, 1), disabled=k == n - 1,
                  icon=":material/arrow_downward:", width="stretch")
        c3.button("Remove", key=f"augment_{uid}_rm", on_click=_remove, args=(k,), icon=":material/delete:",
                  width="stretch")


def _add(image_hw: tuple[int, int]) -> None:
    name = st.session_state.get("augment_add_pick")
    if name:
        st.session_state[NEXT_UID] += 1
        st.session_state[STEPS].append({**augment.new_step(name, image_hw), "uid": st.session_state[NEXT_UID]})


def pipeline_editor(image_hw: tuple[int, int]) -> list[dict]:
    """Add/edit/reorder/remove steps; returns the pipeline as plain steps."""
    options = [n for g in GROUPS for n in TRANSFORMS if TRANSFORMS[n].group == g]
    st.selectbox("Add a transform", options, key="augment_add_pick",
                 format_func=lambda n: f"{n}  ·  {TRANSFORMS[n].group}")
    st.button("Add to the pipeline", key="augment_add", on_click=_add, args=(image_hw,), icon=":material/add:",
              width="stretch", type="primary")
    steps = st.session_state[STEPS]
    if not steps:
        st.info("The pipeline is empty: add a transform above.")
    for k, step in enumerate(steps):
        _step_editor(k, step, len(steps))
    return current_steps()


# --- preview -------------------------------------------------------------------------------
def _again() -> None:
    st.session_state[SEED] = int(st.session_state[SEED]) + 1


def preview_controls(ids: list[str]) -> tuple[list[str], int, int, float]:
    """(image ids, draws, seed, opacity) chosen by the user."""
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Images (empty = random)", ids, key="augment_ids", max_selections=16)
    n = c2.number_input("Random images", 1, 16, 8, key="augment_n", disabled=bool(chosen))
    draws = c3.number_input("Draws each", 1, 8, 4, key="augment_draws")
    seed = c4.number_input("Seed", 0, 2**31 - 1, key=SEED)
    c5, c6 = st.columns([1, 3], vertical_alignment="bottom")
    c5.button("Draw again", on_click=_again, icon=":material/casino:", key="augment_again", width="stretch")
    opacity = c6.slider("Mask opacity", 0.0, 1.0, 0.4, 0.05, key="augment_opacity")
    if not chosen:
        chosen = augment.pick_images(ids, int(n), int(seed))
    return chosen, int(draws), int(seed), float(opacity)


def show_findings(findings: list[augment.Finding]) -> None:
    for f in findings:
        where = f"Step {f.step + 1} · {f.transform}" if f.step is not None else "Pipeline"
        show = {"error": st.error, "warning": st.warning, "info": st.info}[f.level]
        icon = {"error": ":material/error:", "warning": ":material/warning:", "info": ":material/info:"}[f.level]
        show(f"**{where}**: {f.message}", icon=icon)


def training_input(loaded) -> dict:
    """What a training step will do with this dataset under the Train form's settings (its
    remembered values, else the defaults): the input policy resolved on the labeled images, and
    ``aug``, the saved pipeline the form names (None: none, as the form shows a name that is no
    longer saved)."""
    from seglib.review import dataset_key
    from seglib.train import TrainConfig, form_memory
    from seglib.train.inputs import resolve_input

    saved = form_memory.recall(dataset_key(loaded.ds))
    cfg = TrainConfig()
    mode, size = saved.get("input_mode", cfg.input_mode), saved.get("input_size", cfg.input_size)
    share = saved.get("rare_crop_share", cfg.rare_crop_share)
    labeled = loaded.stats.labeled.astype(bool)
    plan = resolve_input(mode, int(size), loaded.stats.shape[labeled] if labeled.any() else loaded.stats.shape)
    aug = saved.get("aug", cfg.aug)
    return {**plan, "rare_share": float(share), "aug": aug if aug in augment.list_pipelines() else None}


def input_words(plan: dict) -> str:
    """The input policy in words, as the Train form's summary line says it."""
    return {"crop": f"random {plan['size']}-px crops", "resize": f"resized to {plan['size']} px"}.get(plan["mode"],
                                                                                                   "whole images")


def pipeline_words(aug: str | None) -> str:
    """The augmentation a run gets, as the Train form's summary line says it."""
    return f"the augmentation pipeline “{aug}”" if aug else "no augmentation pipeline"


def training_caption(plan: dict) -> str:
    """What training does now, and how that relates to the pipeline previewed here."""
    said = (f"**Training now** (the Train page's settings for this dataset): {input_words(plan)}, then "
            f"{pipeline_words(plan['aug'])}.")
    if plan["aug"] is None:
        return said + (" The preview draws the pipeline edited here: save it, then choose it under *Data and "
                       "sampling* on the Train page to train with it.")
    if plan["aug"] != st.session_state.get(LOADED_NAME):
        return said + f" The preview draws the pipeline edited here, not “{plan['aug']}”."
    return said + (f" The preview draws the pipeline edited here; training reads “{plan['aug']}” as last saved: "
                   "save your edits under that name to train with them.")


def input_preparer(loaded, plan: dict, seed: int):
    """(the crop or resize training applies before the pipeline, what it does as a hashable
    value: the preview cache's key); (None, None) for whole images."""
    from seglib.sampling import rarest_classes
    from seglib.train.inputs import input_transform

    if plan["mode"] == "full":
        return None, None
    rare = tuple(rarest_classes(loaded.stats, 1)) if plan["mode"] == "crop" else ()
    policy = (plan["mode"], plan["size"], plan["rare_share"], rare, seed)
    return input_transform(plan, rare, plan["rare_share"], seed), policy


def preview_grid(loaded, ids: list[str], steps: list[dict], draws: int, seed: int, opacity: float,
                 prepare=None, policy=None) -> None:
    """The findings and the original + draws of every image; pictures come from the shared
    cache, so a page opened again (or a rerun that changes none of them) draws nothing."""
    ds = loaded.ds
    pictures = augment.gallery(ds, loaded.fingerprint, ids, steps, draws, seed, opacity, prepare, policy)
    for line in pictures.unreadable:
        st.warning(line)
    show_findings(list(pictures.findings))
    if pictures.error:
        st.error(f"The preview failed: {pictures.error}", icon=":material/error:")
        return
    if not pictures.rows:
        return
    cols = st.columns(draws + 1)
    cols[0].caption("**original**")
    for k in range(draws):
        cols[k + 1].caption(f"**draw {k + 1}**")
    for row in pictures.rows:
        cols = st.columns(draws + 1)
        cols[0].image(row.original[0], caption=row.image_id, width="stretch")
        for k, (data, _) in enumerate(row.draws):
            cols[k + 1].image(data, width="stretch")
    st.html(viz.legend_html(ds.class_map))
    if pictures.ignored_share:  # drawn in the class map's colour for unknown ids (ClassMap.lut)
        st.caption(f":material/block: Magenta: **ignored** pixels (mask value {augment.IGNORE_INDEX}), "
                   f"{pictures.ignored_share:.1%} of the drawn masks: brought in from outside the image by a "
                   "spatial step (its fill_mask), or of a colour the class map does not know. Training leaves them "
                   "out of its losses and metrics.")


# --- save / load / code --------------------------------------------------------------------
def _load(name: str) -> None:
    try:
        set_steps(augment.steps_from_compose(augment.load_pipeline(name)))
    except augment.PipelineError as e:
        st.session_state["augment_load_error"] = str(e)
        return
    st.session_state[LOADED_NAME] = name
    st.session_state["augment_save_name"] = name
    st.session_state.pop("augment_load_error", None)


def save_load_panel(steps: list[dict]) -> None:
    saved = augment.list_pipelines()
    pick = st.selectbox("Saved pipelines", saved, key="augment_load_pick", index=None,
                        help=f"Files in {augment.pipelines_dir()}" if saved else "None saved yet")
    st.button("Load", key="augment_load", on_click=_load, args=(pick,), disabled=pick is None,
              icon=":material/folder_open:", width="stretch")
    if st.session_state.get("augment_load_error"):
        st.error(st.session_state["augment_load_error"])
    st.session_state.setdefault("augment_save_name", st.session_state[LOADED_NAME] or "my-pipeline")
    name = st.text_input("Save as", key="augment_save_name")
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    fmt = c1.radio("Format", ["json", "yaml"], key="augment_save_format", horizontal=True)
    if c2.button("Save", key="augment_save", icon=":material/save:", width="stretch", type="primary"):
        try:
            path = augment.save_pipeline(name.strip(), augment.build_compose(steps), fmt)
        except augment.PipelineError as e:
            st.error(str(e))
        else:
            st.session_state[LOADED_NAME] = name.strip()
            st.success(f"Saved `{path}`. Train with it: `python -m seglib train DATASET ... --aug {name.strip()}`")


def code_panel(steps: list[dict], seed: int) -> None:
    st.caption("Step icons: :material/open_with: spatial (moves the mask too), :material/contrast: pixel only.  \n"
               "The same pipeline in Python (only arguments that differ from albumentations' defaults):")
    st.code(augment.to_python(steps, seed), language="python", wrap_lines=True)
    try:
        text = augment.to_json(steps)
    except augment.PipelineError as e:
        st.error(str(e))
        return
    with st.expander("The saved file (albumentations `A.save` format: load it with `A.load(path)`)"):
        st.code(text, language="json")
    st.download_button("Download pipeline (.json)", text, f"{st.session_state[LOADED_NAME] or 'pipeline'}.json",
                       "application/json", key="augment_download", icon=":material/download:")


# --- class rebalancing ---------------------------------------------------------------------
def rebalance_panel(stats, ids: list[str]) -> None:
    cmap = stats.class_map
    rarest = sampling.rarest_classes(stats, 1)
    c1, c2, c3 = st.columns([1, 2, 1])
    mode = c1.radio("Sampling", sampling.MODES, key="augment_bal_mode", index=1, format_func={
        "uniform": "uniform", "oversample": "oversample classes", "presence": "by class rarity"}.get)
    classes = c2.multiselect("Rare classes", cmap.ids, default=rarest, key="augment_bal_classes",
                             format_func=lambda c: cmap.names[cmap.ids.index(c)], disabled=mode != "oversample")
    factor = c3.slider("Factor", 1.0, 20.0, 4.0, 0.5, key="augment_bal_factor", disabled=mode != "oversample",
                       help="Images that contain a chosen class are drawn this many times as often")
    power = c3.slider("Strength", 0.0, 1.0, 0.5, 0.05, key="augment_bal_power", disabled=mode != "presence",
                      help="Weight = (images / images with the image's rarest class) ** strength")
    weights = sampling.sample_weights(stats, ids, mode, classes, factor, power)
    table = sampling.compare_distributions(stats, ids, weights)
    st.caption("Expected shares over many draws of the training sampler (faded: every image equally likely).")
    left, right = st.columns(2)
    left.plotly_chart(plots.distribution_figure(table, "pixel_share"), width="stretch", key="augment_bal_px")
    right.plotly_chart(plots.distribution_figure(table, "image_share"), width="stretch", key="augment_bal_img")
    boosted = int((weights > weights.min()).sum()) if len(weights) else 0
    st.caption(f"{len(ids):,} labeled images; {boosted:,} drawn more often than the rest. Training draws "
               f"{len(ids):,} images per epoch with replacement from the same weights:")
    st.code(sampling.sampler_code(mode, classes, factor, power), language="python", wrap_lines=True)
