"""The built-in model zoo: the Shapes data set and the models trained on it by our own code.

    shapes.py            procedural Shapes images + captions (factors documented there)
    txt2img_model.py     tiny Stable Diffusion parts (diffusers / transformers classes)
    beta_vae.py          β-VAE architecture
    gan.py               class-conditional StyleGAN-like GAN architecture
    model_files.py       self-describing .safetensors files (config JSON in the metadata)
    train_txt2img.py, train_beta_vae.py, train_gan.py   the training commands
Loading a file into its model is the model manager's: modules/models/zoo_loader.py.
"""
