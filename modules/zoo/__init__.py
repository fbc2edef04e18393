"""The built-in model zoo: the Shapes data set and the models trained on it by our own code.

    shapes.py            procedural Shapes images + captions (factors documented there)
    beta_vae.py          β-VAE; ``load_latent_model(path)``
    gan.py               class-conditional StyleGAN-like GAN; ``load_gan(path)``
    model_files.py       self-describing .safetensors files (config JSON in the metadata)
    train/               the training commands (tooling; the app never imports it)
"""


def __getattr__(name):
    # Lazy, so `modules.zoo.shapes` works without importing torch.
    if name == "load_latent_model":
        from modules.zoo.beta_vae import load_latent_model
        return load_latent_model
    if name == "load_gan":
        from modules.zoo.gan import load_gan
        return load_gan
    raise AttributeError(name)
