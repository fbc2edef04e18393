"""The sd_vae option: a job decodes (and encodes) with a VAE file of models/VAE instead of its checkpoint's
own. The job gets its own view of the pipeline with that VAE in it; the cached pipeline is never changed.
"Automatic" and "None" keep the checkpoint's VAE (A1111's "None" means the same when the checkpoint has one)."""
from __future__ import annotations

import copy

from modules.capabilities.pipeline_view import pipeline_view
from modules.errors import InvalidRequest

OWN_VAE = (None, "", "Automatic", "None")


def with_chosen_vae(run):
    """A capability's run (request, model, job, hooks) that honours `request.vae`."""
    def run_with_vae(request, model, job, hooks):
        name = getattr(request, "vae", None)
        if name in OWN_VAE:
            return run(request, model, job, hooks)
        with hooks.p.backend.manager.vae_file_for_job(name) as vae:
            own = model.pipe.vae
            if vae.config.latent_channels != own.config.latent_channels:
                raise InvalidRequest("sd_vae", f"{name} makes {vae.config.latent_channels}-channel latents, but "
                                               f"{model.info.title} uses {own.config.latent_channels}: pick a VAE "
                                               "made for this checkpoint's family")
            job_model = copy.copy(model)  # this job's: the cached model keeps its own VAE
            job_model.pipe = pipeline_view(model.pipe, vae=vae)
            hooks.p.extra_generation_params["VAE"] = name  # A1111's infotext key
            result = run(request, job_model, job, hooks)
        result.vae_name = name
        return result
    return run_with_vae
