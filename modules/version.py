"""The app's version, written into every infotext."""
VERSION = "0.1.0"
APP_NAME = "Generative Zoo WebUI"
