"""The Latent Explorer tab's panels (layout and wiring only): each builds requests of
modules/capabilities/latent and runs them through the backend's runner."""
