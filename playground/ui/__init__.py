"""The browser UI (Gradio). The only package besides app.py that imports gradio."""

from playground.ui.startup import skip_stub_rewrites

skip_stub_rewrites()  # before any module here imports gradio: see playground/ui/startup.py
