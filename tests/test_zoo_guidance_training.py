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


def test_negative_texts_are_empty_colour_words_junk_or_captions():
    rng = np.random.default_rng(3)
    texts = [guidance.negative_text(rng) for _ in range(1000)]
    empty = sum(not t for t in texts)
    colour = sum(any(c in t.replace(",", " ").split() for c in shapes.COLOUR_NAMES) for t in texts)
    junk_only = sum(bool(t) and not set(t.replace(",", " ").split()) & CAPTION_WORDS for t in texts)
    assert 330 <= empty <= 470 and 120 <= junk_only <= 180 and colour >= 350, (empty, junk_only, colour)


class _Texts:
    """A text encoder whose embedding is 1 for any text and 0 for "" (with the tokenizer it needs)."""
    model_max_length = 4

    def __call__(self, texts, **_):
        return type("Tokens", (), {"input_ids": torch.tensor([[float(bool(t))] * 4 for t in texts])})()


def _gain_unet(gain: float):
    """eps(x, text) = (1 + gain * text) x: the guidance direction changes with x by `gain` per unit step."""
    def unet(x, t, embedding):
        return type("Out", (), {"sample": x * (1 + gain * embedding[:, :1, None, None])})()
    return unet


def test_the_guidance_roughness_term_measures_how_the_guidance_direction_changes_with_the_latent():
    noisy = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.full((8,), 500)
    prompts, negatives = ["a red circle"] * 8, [""] * 8

    def roughness(gain, t=t, negatives=negatives, t_from=0):
        unet = _gain_unet(gain)
        pred = unet(noisy, t, torch.ones(8, 4)).sample
        return float(train_txt2img.guidance_roughness(unet, _Texts(), lambda ids: (ids,), noisy, t, pred, prompts,
                                                      negatives, torch.Generator().manual_seed(1), 8, t_from))

    assert roughness(0.0) == 0.0
    # A random step of std 0.05 moves the guidance direction by gain * step: mean square / 0.05^2 = gain^2.
    assert 0.85 * 4 < roughness(2.0) < 1.15 * 4
    assert roughness(2.0, negatives=["blurry"] * 8) == 0.0  # any text here encodes alike
    assert roughness(2.0, t_from=501) == 0.0  # only timesteps from t_from up count


def test_training_with_the_guidance_smoothness_term_changes_the_unet(tmp_path):
    from safetensors.torch import load_file

    small = ["--size", "tiny", "--batch", "4", "--ae-batch", "4", "--images", "32", "--sample-every", "2",
             "--ae-steps", "1", "--steps", "2"]
    unets = []  # the same draws either way (a weight of 1e-12 still draws its negatives): only the term differs
    for name, weight in (("plain", "1e-12"), ("smooth", "50")):
        extra = ["--guidance-smoothness", weight, "--smoothness-batch", "4"]
        train_txt2img.main(small + extra + ["--out", str(tmp_path / name), "--export", str(tmp_path / f"{name}-pipe")])
        unets.append(load_file(str(tmp_path / f"{name}-pipe" / "unet" / "diffusion_pytorch_model.safetensors")))
    assert any(not torch.equal(unets[0][k], unets[1][k]) for k in unets[0])
