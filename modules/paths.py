"""Where the app's own folders are. Flags may point elsewhere; these are the defaults."""
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = APP_ROOT / "models"
OUTPUTS_DIR = APP_ROOT / "outputs"
EXTENSIONS_DIR = APP_ROOT / "extensions"
CACHE_DIR = APP_ROOT / "cache"
