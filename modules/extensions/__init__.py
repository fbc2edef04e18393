"""Extensions: folders in extensions/ that add scripts to txt2img (and the GAN tab), tabs, routes and callbacks.

What an extension author imports:

    from modules.extensions import AlwaysVisible, PostprocessImage, Script, ScriptOutput, callbacks

See extensions/README.md for the whole story, and extensions/example_tab and extensions/xyz_plot."""
from modules.extensions import callbacks
from modules.extensions.loader import Extensions
from modules.extensions.metadata import Extension, ExtensionError
from modules.extensions.scripts import AlwaysVisible, PostprocessImage, Script, ScriptCall, ScriptOutput

__all__ = ["AlwaysVisible", "Extension", "ExtensionError", "Extensions", "PostprocessImage", "Script", "ScriptCall",
           "ScriptOutput", "callbacks"]
