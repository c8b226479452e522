"""The apps as a user meets them: the Voila page and the Gradio app, served on 127.0.0.1 and
driven in headless Chromium (and the Gradio app also through its API, with gradio_client).

What they need besides the core package:

* Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``);
* ``voila`` and ``selenium`` (the ``dev`` extra), ``gradio`` and ``gradio_client`` (``web``).

On a developer machine without them these tests are skipped. In CI (``CI`` set) a missing piece
is an error instead: CI must really run them.

Screenshots for docs/apps.md come from these runs::

    LANDMARKLIB_SCREENSHOTS=docs/screenshots python -m pytest tests/test_web.py
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from landmarklib import inference
from landmarklib.data import tiny_data_root
from landmarklib.places import place_for

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_04 = "04_inference_and_app.ipynb"
EIFFEL = tiny_data_root() / "test" / "16.Eiffel_Tower" / "image_1073.jpg"
TREVI = tiny_data_root() / "test" / "44.Trevi_Fountain" / "image_1013.jpg"
SCREENSHOTS = os.environ.get("LANDMARKLIB_SCREENSHOTS")
IN_CI = bool(os.environ.get("CI"))

#: How Chromium must start here: no sandbox (root in a container), nothing fetched from outside.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1100,1200"]

#: FileUpload's ``<input type="file">`` is never attached to the page: the button clicks it,
#: which opens the system's file dialog. This stands in for that dialog: the clicked input is
#: put on the page instead, where the test can choose files in it as a user would.
FILE_DIALOG_STAND_IN = """
HTMLInputElement.prototype.click = function () {
  if (this.type === "file" && !this.isConnected) {
    this.id = "file-dialog";
    document.body.appendChild(this);
  }
};"""


def need(module: str):
    """Import a module the test needs: skip without it on a developer machine, fail in CI."""
    if IN_CI:
        return __import__(module)
    return pytest.importorskip(module)


def need_program(*names: str) -> str:
    """The path of the first of ``names`` on PATH: skip without any on a developer machine."""
    for name in names:
        if path := shutil.which(name):
            return path
    message = f"none of {names} is installed (Debian: apt-get install -y chromium chromium-driver)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(command: list[str], url: str, env: dict, log: Path, timeout: float = 120):
    """Start a server and wait until ``url`` answers; returns the process."""
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[1:3]} stopped: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise TimeoutError(f"{url} did not answer in {timeout} s: {log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_env(model: Path, tmp: Path) -> dict:
    env = dict(os.environ, LANDMARKLIB_MODEL=str(model), LANDMARKLIB_CACHE=str(tmp / "cache"),
               GRADIO_ANALYTICS_ENABLED="False")
    env.pop("LANDMARKLIB_TINY", None)
    return env


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by Selenium through Debian's chromedriver."""
    chromium = need_program("chromium", "chromium-browser")
    chromedriver = need_program("chromedriver")
    need("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def screenshot(driver, name: str) -> None:
    """Save what the browser shows to $LANDMARKLIB_SCREENSHOTS/name, if that is set."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / name))


# ------------------------------------------------------------------------------ the Voila page


@pytest.fixture(scope="module")
def voila_url(tiny_model_file, tmp_path_factory):
    """``voila notebooks/app.ipynb``, as docs/apps.md says, on a free port of 127.0.0.1."""
    need("voila")
    tmp = tmp_path_factory.mktemp("voila")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "voila", "notebooks/app.ipynb", "--no-browser",
               f"--port={port}", "--Voila.ip=127.0.0.1", "--show_tracebacks=True"]
    process = serve(command, url, server_env(tiny_model_file, tmp), tmp / "voila.log")
    yield url
    stop(process)


def test_voila_page_classifies_uploaded_photos(browser, voila_url, tiny_model_file, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    browser.get(voila_url)
    upload = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".widget-upload"))[0]

    browser.execute_script(FILE_DIALOG_STAND_IN)
    upload.click()
    dialog = wait_for(browser, lambda d: d.find_elements(By.ID, "file-dialog"), 10)[0]
    dialog.send_keys("\n".join(str(path) for path in (EIFFEL, TREVI, notes)))

    wait_for(browser, lambda d: "Cannot use notes.txt" in page_text(d))
    text = page_text(browser)
    for photo in (EIFFEL, TREVI):  # the page says what predict_landmarks says
        place = place_for(inference.predict_landmarks(photo, k=1, model=tiny_model_file)[0])
        assert f"The {place.name} is in {place.where} (map)." in text
    assert "The Eiffel Tower is in Paris, France (map)." in text
    assert "Cannot use notes.txt: not an image file PIL can read" in text
    charts = chart_heights(browser)
    assert len(charts) == 2
    screenshot(browser, "voila.png")

    handle = browser.find_element(By.CSS_SELECTOR, ".noUi-handle")
    handle.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # k: 3 -> 5
    wait_for(browser, lambda d: chart_heights(d) not in ([], charts), 60)
    taller = chart_heights(browser)
    assert len(taller) == 2 and all(new > old for new, old in zip(taller, charts))


def chart_heights(driver) -> list[int]:
    """The pixel heights of the bar charts on the page (one per photo; taller with more bars).
    Read in one script, so that cards redrawn meanwhile cannot go stale under the test."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.landmark-chart img, img.landmark-chart'),"
        " image => image.naturalHeight)")


# ---------------------------------------------------------------- the upload box in JupyterLab


@pytest.fixture(scope="module")
def jupyterlab_url(tiny_model_file, tmp_path_factory):
    """JupyterLab on a free port of 127.0.0.1, serving a copy of notebook 04 (a copy, so that
    JupyterLab's autosave cannot write outputs into the committed notebook)."""
    need("jupyterlab")
    tmp = tmp_path_factory.mktemp("jupyterlab")
    (tmp / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK_04, tmp / "notebooks" / NOTEBOOK_04)
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "would you like news?" pop-up over the screenshot
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = free_port()
    env = server_env(tiny_model_file, tmp)
    env.update(LANDMARKLIB_TINY="1", JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={tmp / 'notebooks'}", "--ServerApp.allow_root=True",
               "--LabApp.expose_app_in_browser=True"]
    process = serve(command, f"http://127.0.0.1:{port}/lab", env, tmp / "jupyterlab.log")
    yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK_04}"
    stop(process)


def test_upload_box_in_notebook_04_in_jupyterlab(browser, jupyterlab_url):
    """Run all of notebook 04 in JupyterLab (tiny mode), then upload a photo into its box."""
    from selenium.webdriver.common.by import By

    browser.get(jupyterlab_url)
    wait_for(browser, lambda d: d.execute_script(
        "return !!(window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell'))"))
    wait_for(browser, lambda d: "| Idle" in page_text(d))  # the kernel has started
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # The box comes from the last code cell; "run all" stops at the first cell that fails.
    upload = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".widget-upload"),
                      300)[0]

    browser.execute_script(FILE_DIALOG_STAND_IN)
    upload.click()
    dialog = wait_for(browser, lambda d: d.find_elements(By.ID, "file-dialog"), 10)[0]
    dialog.send_keys(str(EIFFEL))

    wait_for(browser, lambda d: chart_heights(d), 60)
    assert "image_1073.jpg\nThe Eiffel Tower is in Paris, France (map)." in page_text(browser)
    assert len(chart_heights(browser)) == 1
    browser.execute_script("window.jupyterapp.commands.execute('application:toggle-left-area')")
    browser.execute_script("""
        const notebook = window.jupyterapp.shell.currentWidget.content;
        const index = notebook.widgets.findIndex(
            cell => cell.model.sharedModel.getSource().startsWith("## Your own photos"));
        notebook.scrollToItem(index, "start");""")
    browser.execute_async_script(  # the notebook has painted after scrolling: two frames later
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
    screenshot(browser, "upload_box.png")


# ------------------------------------------------------------------------------ the Gradio app


@pytest.fixture(scope="module")
def gradio_url(tiny_model_file, tmp_path_factory):
    """``python app.py``, as docs/apps.md says, on a free port of 127.0.0.1."""
    need("gradio")
    tmp = tmp_path_factory.mktemp("gradio")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = server_env(tiny_model_file, tmp)
    env.pop("GRADIO_SERVER_NAME", None)
    env["GRADIO_TEMP_DIR"] = str(tmp / "uploads")
    process = serve([sys.executable, "app.py", "--port", str(port)], url, env, tmp / "gradio.log")
    yield url
    stop(process)


def test_gradio_api_answers_like_predict_landmarks(gradio_url, tiny_model_file, tmp_path):
    need("gradio_client")
    from gradio_client import Client, handle_file

    client = Client(gradio_url, verbose=False)
    label, where, sidecar, heatmap, similar = client.predict(
        handle_file(str(EIFFEL)), 3, False, api_name="/predict")
    assert heatmap is None and not similar  # no memory beside this model

    assert label["label"] == "Eiffel Tower"
    expected = inference.predict_with_probabilities(EIFFEL, 3, tiny_model_file)
    assert [c["label"] for c in label["confidences"]] == [name for name, _ in expected]
    assert [c["confidence"] for c in label["confidences"]] == pytest.approx(
        [p for _, p in expected], abs=1e-6)
    assert where.startswith("The Eiffel Tower is in Paris, France ([map](https://www.openstreetm")
    # The sidecar to download: for this photo, read back by the project's reader.
    from landmarklib.sidecars import read_sidecar

    assert Path(sidecar).name == f"{EIFFEL.name}.xmp"
    info = read_sidecar(sidecar)
    assert info.landmark == "Eiffel Tower" and info.latitude == pytest.approx(48.8584, abs=1e-3)

    label, _, _, heatmap, _ = client.predict(handle_file(str(TREVI)), 5, True,
                                             api_name="/predict")
    assert label["label"] == "Trevi Fountain" and len(label["confidences"]) == 5
    assert Image.open(heatmap).size == (224, 224)  # where the model looks, when asked

    cut_short = tmp_path / "cut_short.jpg"
    cut_short.write_bytes(EIFFEL.read_bytes()[:2000])
    with pytest.raises(Exception, match="Cannot use cut_short.jpg: the image is truncated"):
        client.predict(handle_file(str(cut_short)), 3, False, api_name="/predict")


def test_gradio_page_classifies_an_uploaded_photo(browser, gradio_url):
    from selenium.webdriver.common.by import By

    browser.get(gradio_url)
    photo_input = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                              "input[type=file]"))[0]
    photo_input.send_keys(str(EIFFEL))
    submit = wait_for(browser, lambda d: [b for b in d.find_elements(By.TAG_NAME, "button")
                                          if b.text.strip() == "Submit"])[0]
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "img[alt], .image-frame img"), 30)
    submit.click()
    # The sentence is written from the top-1 landmark the app returned for the uploaded photo.
    wait_for(browser, lambda d: "The Eiffel Tower is in Paris, France" in page_text(d), 60)
    screenshot(browser, "gradio.png")
