"""The built-in model zoo: the Shapes data set and the models trained on it by our own code.

    shapes.py            procedural Shapes images + captions (factors documented there)
    beta_vae.py          β-VAE architecture
    gan.py               class-conditional StyleGAN-like GAN architecture
    model_files.py       self-describing .safetensors files (config JSON in the metadata)
    train/               the training commands and the tiny SD model's parts (tooling; the app never imports it)
Loading a file into its model is the model manager's: modules/models/zoo_loader.py.
"""
