"""The browser UI (Gradio). The only package besides app.py that imports gradio."""
