"""The sidebar: dataset picker and the validation report of the dataset in use."""
from __future__ import annotations

import streamlit as st

from seglib.data import DatasetError
from seglib.data.upload import save_upload

from . import data, state


def short_path(file: str, root) -> str:
    """A problem's file relative to the dataset (full paths crowd the sidebar)."""
    root = str(root)
    return file[len(root):].lstrip("/") or file if file.startswith(root) else file


def _use(path: str) -> None:
    st.session_state[state.DATASET] = path
    st.session_state[state.UNLABELED] = ""   # a new batch belongs to the dataset it was added to
    if "unlabeled" in st.query_params:
        del st.query_params["unlabeled"]
    if path:
        st.query_params["dataset"] = path
    elif "dataset" in st.query_params:
        del st.query_params["dataset"]


def dataset_picker() -> None:
    with st.sidebar:
        st.subheader("Dataset")
        current = st.session_state.get(state.DATASET, "")
        source = st.radio("Source", ["Demo (Mars terrain)", "Path on this machine", "Upload"],
                          index=0 if not current else 1, key="picker_source", horizontal=False,
                          label_visibility="collapsed")
        if source.startswith("Demo"):
            if current:
                _use("")
                st.rerun()
        elif source.startswith("Path"):
            with st.form("picker_path_form", border=False):
                path = st.text_input("Folder or .npz path", value=current, key="picker_path",
                                     placeholder="/data/camvid or /data/mars.npz")
                # Opened here first, so a refused, missing or unreadable path leaves the open
                # dataset (and the URL) as they were, and says why next to the box.
                if st.form_submit_button("Open", width="stretch") and path.strip() != current:
                    problem = data.open_problem(path.strip())
                    if problem is None:
                        _use(path.strip())
                        st.rerun()
                    elif problem != "refused":
                        st.error(f"{problem}. The open dataset stays.", icon=":material/folder_off:")
        else:
            up = st.file_uploader("A .npz, or a .zip of a dataset folder", type=["npz", "zip"], key="picker_upload")
            if up is not None:
                try:
                    path = save_upload(up.name, up.getvalue())
                except (DatasetError, OSError, ValueError) as e:
                    st.error(str(e))
                else:
                    if path != current:
                        _use(path)
                        st.rerun()
        if st.button("Rescan files", help="Read the dataset again after its files changed",
                     width="stretch"):
            st.session_state[state.RELOAD] += 1
        loaded = data.current()
        if loaded is None:
            return
        ds = loaded.ds
        fixed = len(ds.corrected_ids)
        st.caption(f"**{ds.name}** · {len(ds):,} images · {len(ds.labeled_ids):,} labeled · "
                   f"{len(ds.class_map)} classes · {ds.kind}, {ds.encoding} masks"
                   + (f" · {fixed:,} corrected mask{'s' * (fixed != 1)}" if fixed else ""))
        st.toggle("Original masks", key=state.ORIGINAL_MASKS,
                  help="Show and use the dataset files' masks instead of the corrected ones saved on the Label "
                       "page (the files are never changed; training and the CLI use the corrected ones too, "
                       "unless told `--original-masks`).")
        report = ds.report
        if report:
            errors = sum(p.excluded for p in report.problems)
            label = f"⚠️ {len(report)} problems ({errors} left out)"
            with st.expander(label, expanded=False):
                st.caption("See the Home page for the full report.")
                for p in report.problems[:8]:
                    st.markdown(f"- `{short_path(p.file, ds.source)}`: {p.problem}")
