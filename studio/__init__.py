"""The Streamlit studio's shared UI helpers. Pages stay thin: they call `datagen_core` and draw."""
