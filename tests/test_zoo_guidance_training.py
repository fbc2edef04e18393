"""The zoo-shapes training data that keeps CFG on the picture manifold (modules/zoo/train/guidance.py), and the
fine-tune switches of the txt2img trainer (--init, --freeze-encoder)."""
import numpy as np
import torch

from modules.zoo import shapes
from modules.zoo.train import guidance
from modules.zoo.train import txt2img as train_txt2img

CAPTION_WORDS = set(shapes.caption_vocabulary())


def test_junk_words_are_never_caption_words():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        for word in guidance.junk_text(rng).replace(",", " ").split():
            assert word not in CAPTION_WORDS, word


def test_training_texts_are_empty_junk_or_the_caption_with_junk_around_it():
    rng = np.random.default_rng(1)
    data = shapes.make_dataset(400, seed=3, two_shape_probability=0.25)
    kinds = {"empty": 0, "junk": 0, "caption": 0, "caption+junk": 0}
    for scene in data.scenes:
        text = guidance.training_text(scene, rng, dropout=0.1, junk_only=0.05, junk_mixed=0.3)
        words = set(text.replace(",", " ").split())
        if not text:
            kinds["empty"] += 1
        elif not words & CAPTION_WORDS:
            kinds["junk"] += 1
        else:
            assert all(s.kind in words and s.colour in words for s in scene.shapes), text
            kinds["caption+junk" if words - CAPTION_WORDS else "caption"] += 1
    assert 20 <= kinds["empty"] <= 65 and 5 <= kinds["junk"] <= 40, kinds
    assert 60 <= kinds["caption+junk"] <= 150 and kinds["caption"] >= 180, kinds


def test_a_recoloured_scene_keeps_its_shapes_and_changes_every_colour():
    rng = np.random.default_rng(2)
    for scene in shapes.make_dataset(300, seed=4, two_shape_probability=0.5).scenes:
        twin = guidance.recoloured(scene, rng)
        assert len(twin.shapes) == len(scene.shapes)
        for a, b in zip(scene.shapes, twin.shapes):
            assert (a.kind, a.size, a.position, a.jitter) == (b.kind, b.size, b.position, b.jitter)
            assert a.colour != b.colour and b.combo not in shapes.HELDOUT_COMBOS
    images = guidance.recoloured_images(shapes.make_dataset(4, seed=5).scenes, seed=1)
    assert images.shape == (4, 32, 32, 3) and np.array_equal(
        images, guidance.recoloured_images(shapes.make_dataset(4, seed=5).scenes, seed=1))


def test_a_fine_tune_starts_from_a_pipeline_and_can_keep_its_encoder(tmp_path):
    from safetensors.torch import load_file

    small = ["--size", "tiny", "--extrapolation-weight", "1", "--colour-latent-weight", "1", "--junk-only", "0.05",
             "--junk-mixed", "0.3", "--batch", "4", "--ae-batch", "4", "--images", "32", "--sample-every", "2"]
    base = tmp_path / "base"
    train_txt2img.main(small + ["--ae-steps", "2", "--steps", "2", "--out", str(tmp_path / "run0"), "--export", str(base)])
    tuned = tmp_path / "tuned"
    train_txt2img.main(small + ["--ae-steps", "2", "--steps", "0", "--init", str(base), "--freeze-encoder",
                                "--out", str(tmp_path / "run1"), "--export", str(tuned)])
    before = load_file(str(base / "vae" / "diffusion_pytorch_model.safetensors"))
    after = load_file(str(tuned / "vae" / "diffusion_pytorch_model.safetensors"))
    for name, tensor in before.items():
        same = torch.equal(tensor, after[name])
        assert same == name.startswith(("encoder.", "quant_conv.")), name  # only the decoder trained
    unet = "unet/diffusion_pytorch_model.safetensors"
    assert all(torch.equal(t, load_file(str(tuned / unet))[k]) for k, t in load_file(str(base / unet)).items())
    assert (tuned / "vae" / "config.json").read_text() == (base / "vae" / "config.json").read_text()


def test_with_junk_off_the_captions_are_the_plain_recipes():
    """Off by default: the documented recipe draws exactly the captions it always drew (shipped weights stay
    reproducible)."""
    scenes = shapes.make_dataset(300, seed=6).scenes
    plain, new = np.random.default_rng(9), np.random.default_rng(9)
    for scene in scenes:
        expected = "" if plain.random() < 0.1 else shapes.random_caption(scene, plain)
        assert guidance.training_text(scene, new, dropout=0.1, junk_only=0.0, junk_mixed=0.0) == expected
