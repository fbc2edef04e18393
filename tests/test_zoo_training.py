"""Each zoo training command runs end to end at toy sizes, writes its pictures and a loadable model."""
import json

import torch

from modules.models.zoo_loader import load_gan, load_latent_model
from modules.zoo.train import beta_vae as train_beta_vae
from modules.zoo.train import gan as train_gan
from modules.zoo.train import txt2img as train_txt2img


def test_beta_vae_training_smoke(tmp_path):
    export = tmp_path / "vae.safetensors"
    args = ["--steps", "6", "--batch", "8", "--images", "64", "--latent-dim", "8", "--channels", "8,16",
            "--sample-every", "3", "--out", str(tmp_path / "run"), "--export", str(export)]
    train_beta_vae.main(args)
    for name in ("samples.png", "traversal.png", "loss.png", "checkpoint.pt"):
        assert (tmp_path / "run" / name).exists()
    assert load_latent_model(export).latent_dim == 8
    train_beta_vae.main(args[:1] + ["8"] + args[2:])  # resumes from step 6
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 8


def test_gan_training_smoke(tmp_path):
    export = tmp_path / "gan.safetensors"
    train_gan.main(["--steps", "5", "--batch", "8", "--images", "64", "--channels", "8,8,8", "--d-channels", "8,8,8",
                    "--sample-every", "5", "--out", str(tmp_path / "run"), "--export", str(export)])
    assert (tmp_path / "run" / "samples.png").exists() and (tmp_path / "run" / "loss.png").exists()
    gan = load_gan(export)
    assert gan.sample(torch.randn(2, gan.z_dim), 0, 0.7).shape == (2, 3, 32, 32)


def test_txt2img_training_smoke(tmp_path):
    from diffusers import StableDiffusionPipeline

    export = tmp_path / "pipe"
    train_txt2img.main(["--size", "tiny", "--ae-steps", "3", "--steps", "3", "--batch", "4", "--ae-batch", "4",
                        "--images", "32", "--sample-every", "3", "--out", str(tmp_path / "run"), "--export", str(export)])
    assert (tmp_path / "run" / "samples.png").exists() and (tmp_path / "run" / "loss.png").exists()
    pipe = StableDiffusionPipeline.from_pretrained(export, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle", negative_prompt="a blue square", num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_train_all_runs_the_three_side_by_side(tmp_path, capsys):
    from modules.zoo.train import all as train_all

    assert train_all.main(["--smoke", "--out-dir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("\n{") + 1:])
    assert report["failed"] == [] and report["seconds"]["total_wall_clock"] >= max(report["seconds"]["txt2img"], 1)
    for path in train_all.exports(tmp_path / "models").values():
        assert path.exists(), path
    for name in ("txt2img", "txt2img-smooth", "txt2img-settle", "txt2img-recolour", "txt2img-follow", "txt2img-decoder",
                 "beta-vae", "gan"):
        # (an autoencoder-only stage plots autoencoder_loss.png)
        assert list((tmp_path / "runs" / name).glob("*loss.png")), name
        assert (tmp_path / "runs" / f"{name}.log").exists()


def test_gan_training_smoke_colour_and_kind_classes(tmp_path):
    from modules.zoo import shapes
    from modules.zoo.gan import CONDITIONS, class_factors, class_labels

    export = tmp_path / "gan.safetensors"
    train_gan.main(["--steps", "3", "--batch", "8", "--images", "64", "--channels", "8,8,8", "--d-channels", "8,8,8",
                    "--condition", "colour-kind", "--aux-weight", "1", "--mode-seeking", "1", "--sample-every", "3",
                    "--out", str(tmp_path / "run"), "--export", str(export)])
    gan = load_gan(export)
    assert gan.num_classes == len(shapes.SHAPES) * len(shapes.COLOUR_NAMES)
    assert class_factors(gan.class_names[0]) == {"colour": "red", "kind": "circle"}
    data = shapes.make_dataset(20, seed=3)
    for scene, label in zip(data.scenes, class_labels(data, CONDITIONS["colour-kind"])):
        assert class_factors(gan.class_names[label]) == {"colour": scene.shapes[0].colour, "kind": scene.shapes[0].kind}


def test_the_app_never_imports_tooling():
    """Training, the test converters and the benchmark's readers are tooling: only their own commands, the tests
    and the benchmarks import them."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    train = root / "modules" / "zoo" / "train"
    tooling = re.compile(r"^\s*(from|import) (modules\.zoo\.train|tests|bench)\b", re.M)
    importers = [str(f.relative_to(root)) for f in [root / "webui.py", *(root / "modules").rglob("*.py"),
                                                    *(root / "extensions").rglob("*.py")]
                 if train not in f.parents and tooling.search(f.read_text(encoding="utf-8"))]
    assert importers == [], importers
