"""Generative Zoo WebUI: everything below modules/ui is usable without gradio."""
