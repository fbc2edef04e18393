"""The GAN Sampler capability: sample a grid of seeds (or a point of the seed plane, or imported latents)
and render interpolation videos between seeds.

    request.py  GanRequest, GanVideoRequest: validated once, errors naming the field
    run.py      sampling: a pure function of (request, loaded generator, job, hooks)
    video.py    interpolation videos (GIF, MP4)
    state.py    each image's latent, portable in PNG text chunks and .json files
"""
