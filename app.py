"""Genetic Prompt Studio: `streamlit run app.py` opens the demo project on the embedded model."""

from __future__ import annotations

import streamlit as st

from studio import state

st.set_page_config(page_title="Genetic Prompt Studio", page_icon="🧬", layout="wide")

PAGES = [
    st.Page("pages/project.py", title="Project", icon=":material/folder_open:", default=True),
    st.Page("pages/genes.py", title="Genes & constraints", icon=":material/genetics:"),
    st.Page("pages/evolve.py", title="Evolve", icon=":material/bolt:"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/review.py", title="Review", icon=":material/fact_check:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]

navigation = st.navigation(PAGES)
state.sidebar()
navigation.run()
