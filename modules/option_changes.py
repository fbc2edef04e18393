"""Saving options, for the API's POST /sdapi/v1/options and the Settings tab alike: names a user gives are
resolved (a checkpoint's name to its title, a VAE file's name), values checked against the models they
need, then stored: the server's options by an admin (or anyone, without logins), a user's own otherwise."""
from __future__ import annotations

from modules.errors import BadModelFile, InvalidRequest, ModelNotFound

VAE_AUTOMATIC, VAE_NONE = "Automatic", "None"


class NotAdmin(Exception):
    """A non-admin tried to change a server-wide option; args[0] names it."""


def save_options(backend, changes: dict, user: str | None, admin: bool) -> dict:
    """Store `changes` (validated all at once; nothing is stored when one is bad) and return what was stored.
    `user`: the logged-in user, None without logins; `admin`: whether they may change the server's options."""
    changes = resolved(backend, changes)
    if not admin:
        if user is None:  # nobody to keep them for
            raise NotAdmin(next(iter(changes), ""))
        try:
            return backend.settings.update_for_user(user, changes)
        except PermissionError as e:
            raise NotAdmin(e.args[0]) from None
    return backend.settings.update(changes)


def resolved(backend, changes: dict) -> dict:
    changes = dict(changes)
    if "sd_model_checkpoint" in changes:
        name = changes["sd_model_checkpoint"]
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest("sd_model_checkpoint", "must be a checkpoint title or name "
                                                        "(see GET /sdapi/v1/sd-models)")
        try:
            changes["sd_model_checkpoint"] = backend.find_checkpoint_title(name)
        except (ModelNotFound, BadModelFile) as e:
            raise InvalidRequest("sd_model_checkpoint", str(e)) from None
    if "sd_vae" in changes:
        changes["sd_vae"] = vae_choice(backend, changes["sd_vae"])
    if "CLIP_stop_at_last_layers" in changes:
        from modules.settings import validate

        # Checked against the default checkpoint (the one being set, if any), so a saved clip skip
        # never breaks later default jobs.
        clip_skip = validate("CLIP_stop_at_last_layers", changes["CLIP_stop_at_last_layers"])
        backend.check_clip_skip(clip_skip, changes.get("sd_model_checkpoint"), "CLIP_stop_at_last_layers",
                                default=True)
    return changes


def vae_choice(backend, name) -> str:
    """"Automatic" (the checkpoint's own VAE), "None" (the same, as A1111 has no other), or a VAE file's name."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("sd_vae", "must be Automatic, None, or a VAE file's name (see GET /sdapi/v1/sd-vae)")
    name = name.strip()
    for keyword in (VAE_AUTOMATIC, VAE_NONE):
        if name.lower() == keyword.lower():
            return keyword
    try:
        return backend.manager.vae_files.find(name).name
    except (ModelNotFound, BadModelFile) as e:
        raise InvalidRequest("sd_vae", str(e)) from None


def vae_choices(backend) -> list[str]:
    return [VAE_AUTOMATIC, VAE_NONE, *(f.name for f in backend.manager.vae_files.scan())]
