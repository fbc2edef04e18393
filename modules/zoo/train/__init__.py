"""Training the built-in zoo: tooling, never imported by the app.

    python -m modules.zoo.train.txt2img     the text-to-image model (tiny Stable Diffusion)
    python -m modules.zoo.train.beta_vae    the β-VAE of the Latent Explorer
    python -m modules.zoo.train.gan         the GAN of the GAN Sampler
    python -m modules.zoo.train.all         all three, side by side on two cores

    common.py          checkpoints, EMA, loss plots, CPU threads
    txt2img_model.py   the text-to-image model's parts, built from scratch
"""
