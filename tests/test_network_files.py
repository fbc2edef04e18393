"""The extra-network folder listing: names, previews beside files, first folder wins, rescans on change."""
import os

from modules.networks.files import NetworkFolder


def test_lists_files_with_previews_and_rescans_on_change(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    (a / "style.safetensors").write_bytes(b"x")
    (a / "style.preview.png").write_bytes(b"png")
    (a / "sub" / "other.pt").write_bytes(b"y")
    (a / "notes.txt").write_text("no")
    (b / "style.safetensors").write_bytes(b"z")  # same name in a later folder: the first folder's wins
    folder = NetworkFolder([a, b], (".safetensors", ".pt"))
    files = folder.files()
    assert [f.name for f in files] == ["other", "style"]
    style = folder.find("STYLE")
    assert style.path == a / "style.safetensors" and style.preview == a / "style.preview.png"
    assert folder.find("sub/other.pt").name == "other" and folder.find("other").preview is None
    (a / "new.safetensors").write_bytes(b"n")
    os.utime(a, ns=(1, 10**18))  # a changed folder time: listed again
    assert [f.name for f in folder.files()] == ["new", "other", "style"]
    assert folder.find("missing") is None
