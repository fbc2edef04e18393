"""From the moment the server says "Running on", the guard and the API are both there: the app is
built with them before its port opens (a script that polls the port must not find either missing)."""
import time

import requests

from tests.app_process import AppProcess


def test_guard_and_api_are_up_when_the_port_opens(models_dir, tmp_path):
    flags = ["--api", "--gradio-auth", "ann:secret-words", "--models-dir", str(models_dir),
             "--outdir", str(tmp_path / "out"), "--skip-load-model-at-start", "--offline"]
    with AppProcess(*flags) as app:  # returns as soon as "Running on" is printed
        anonymous = requests.get(app.url + "/sdapi/v1/sd-models", timeout=30)
        logged_in = requests.get(app.url + "/sdapi/v1/sd-models", auth=("ann", "secret-words"), timeout=30)
        # Gradio's own launch-time check may still be under way just after "Running on"; once launch()
        # has returned, that route needs a login like any other.
        deadline = time.time() + 30
        while (startup := requests.get(app.url + "/gradio_api/startup-events", timeout=30)).status_code != 401:
            if time.time() > deadline:
                break
            time.sleep(0.2)
    assert anonymous.status_code == 401
    assert logged_in.status_code == 200 and any(m["model_name"] for m in logged_in.json())
    assert startup.status_code == 401, "Gradio's launch-time check stays open after launch"
