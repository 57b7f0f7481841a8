"""What a person sees when a page fails unexpectedly: one short message with a reference, never
a stack trace (it can show paths and data of the machine that serves the app). The traceback
goes to the server's log under the same reference, so whoever runs the app can find it.

``client.showErrorDetails = "full"`` (``./run.sh --dev``, the tests) lets exceptions through to
Streamlit, which then shows them whole, as a developer wants.
"""
from __future__ import annotations

import secrets

import streamlit as st
from streamlit.logger import get_logger

_LOG = get_logger("seglib.app")


def details_shown() -> bool:
    return str(st.get_option("client.showErrorDetails")).lower() in ("full", "true")


def run_page(page) -> None:
    """``page.run()``, turning an unexpected exception into a short message with a reference."""
    try:
        page.run()
    except Exception as e:  # st.rerun / st.stop are BaseExceptions and pass through
        if details_shown():
            raise
        ref = secrets.token_hex(4)
        _LOG.error("page %r failed (reference %s)", getattr(page, "title", page), ref, exc_info=e)
        st.error(f"This page hit an unexpected error ({type(e).__name__}). Reference **{ref}**: the details are in "
                 "the app's log (the terminal or service that runs it). Other pages keep working.",
                 icon=":material/error:")
