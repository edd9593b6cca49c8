"""The results page in a real browser: Debian's Chromium driven through its chromedriver (nothing is
downloaded at run time). `.ci/run` installs both and sets SRLAB_REQUIRE_BROWSER=1, so there the
browser tests never skip; elsewhere they install the two packages with apt-get when they can, and
skip with the reason when they cannot."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import mirror_or_skip, page_data
from PIL import Image

from srlab.data.degrade import downscale, interpolate
from srlab.data.images import load_rgb, save_png
from srlab.evaluation import summarise
from srlab.metrics import psnr_y, ssim_y
from srlab.page import Run, workspace, write_page
from srlab.params import parse_params

SCALE = 2
IMAGES = {"Set5": ["butterfly", "bird"], "Set14": ["baboon"]}


def _run_folder(root, mirror) -> dict:
    """A finished run's files, as the pipeline lays them out, for 3 crops of the mirror's test
    images: bicubic and a nearest-neighbour "model" scored by srlab's own metric code."""
    rows = []
    for set_name, names in IMAGES.items():
        for name in names:
            hr = load_rgb(mirror / set_name / f"{name}.png")[0][40:136, 60:188]  # 96 x 128
            save_png(root / "data/raw/test" / set_name / f"{name}.png", hr)
            lr = downscale(hr, SCALE, "bicubic")
            nearest = lr.repeat(SCALE, 0).repeat(SCALE, 1)
            for method, out in (("bicubic", interpolate(lr, SCALE, "bicubic")), ("nearest", nearest)):
                save_png(root / "data/sr" / set_name / method / f"{name}.png", out)
                rows.append(
                    {"set": set_name, "image": name, "method": method, "psnr": psnr_y(out, hr, SCALE),
                     "ssim": ssim_y(out, hr, SCALE), "perceptual": float(np.abs(out.astype(float) - hr).mean())}
                )  # fmt: skip
    table = pd.DataFrame(rows)
    (root / "reports").mkdir()
    table.to_csv(root / "reports/per_image.csv", index=False, float_format="%.6f")
    metrics = summarise(pd.read_csv(root / "reports/per_image.csv"), parse_params({"data": {"scale": SCALE}}, "test"))
    (root / "reports/metrics.json").write_text(json.dumps(metrics))
    for stage in ("mse", "perceptual"):
        for split in ("train", "val"):
            folder = root / "reports/train" / stage / "plots/metrics" / split
            folder.mkdir(parents=True)
            for term, values in (("l_mse", [3e-3, 2e-3, 1e-3]), ("psnr", [30, 31, 31.5])):
                pd.DataFrame({"step": [1, 2, 3], term: values}).to_csv(folder / f"{term}.tsv", sep="\t", index=False)
    return metrics


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    metrics = _run_folder(root, mirror_or_skip())
    html = write_page([Run("", workspace(root))], root / "reports/page", "srlab: test page")
    return root, html, metrics


def test_the_page_carries_the_metrics_and_a_lossless_image_of_every_panel(page):
    root, html, metrics = page
    data = page_data(html)
    for set_name in IMAGES:
        assert data["sets"][set_name]["summary"] == metrics[set_name]
        for image in data["sets"][set_name]["images"]:
            assert list(image["panels"]) == ["bicubic", "nearest", "ground truth"]
            for method in ("bicubic", "nearest"):
                shown = np.asarray(Image.open(html.parent / image["panels"][method]).convert("RGB"))
                written = load_rgb(root / "data/sr" / set_name / method / f"{image['name']}.png")[0]
                assert np.array_equal(shown, written)
    assert [svg.split('data-chart="')[1].split('"')[0] for svg in data["curves"]] == ["Y-PSNR (dB)", "MSE loss"]


def test_a_missing_ground_truth_is_named_in_one_line(tmp_path):
    from srlab.errors import SrlabError

    _run_folder(tmp_path, mirror_or_skip())
    (tmp_path / "data/raw/test/Set14/baboon.png").unlink()
    (tmp_path / "reports/page").mkdir()
    (tmp_path / "reports/page/index.html").write_text("the last good page")
    with pytest.raises(SrlabError, match="data/raw/test/Set14: no ground truth for baboon"):
        write_page([Run("", workspace(tmp_path))], tmp_path / "reports/page", "t")
    assert (tmp_path / "reports/page/index.html").read_text() == "the last good page"  # nothing half-written


# -- in the browser ---------------------------------------------------------------------------


def _browser_or_skip():
    """Debian's chromium and chromium-driver, installed with apt-get where they are absent."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")) and shutil.which("apt-get"):
        if os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900)
            install = ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]
            quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(install, capture_output=True, timeout=900, env=quiet)
    missing = [tool for tool in ("chromium", "chromedriver") if not shutil.which(tool)]
    if missing:
        why = f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver)"
        if os.environ.get("SRLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    return webdriver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1000", "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)  # the network flags: this machine refuses Chromium's background calls
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium-manager would otherwise try to download one
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _loaded(browser, html):
    browser.get(html.as_uri())
    browser.execute_script(
        "return Promise.all([...document.images].map(i => i.complete ? 0 : new Promise(r => i.onload = i.onerror = r)))"
    )
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_loads_without_an_error_and_shows_the_numbers_of_metrics_json(browser, page):
    root, html, metrics = page
    assert _loaded(browser, html) == []
    from selenium.webdriver.common.by import By

    for set_name in IMAGES:
        section = browser.find_element(By.CSS_SELECTOR, f'section[data-set="{set_name}"] table.summary')
        for method, scores in metrics[set_name].items():
            row = section.find_element(By.CSS_SELECTOR, f'tr[data-method="{method}"]')
            for score, value in scores.items():
                cell = row.find_element(By.CSS_SELECTOR, f'td[data-score="{score}"]')
                assert float(cell.get_attribute("data-value")) == value
                digits = {"psnr": 2, "ssim": 4, "perceptual": 6}[score]
                assert cell.text == f"{value:.{digits}f}"
    curves = browser.find_elements(By.CSS_SELECTOR, "#curves svg polyline")
    assert len(curves) == 2 * 2 * 2  # two terms, two stages, train and val


def test_after_a_drag_the_pixels_left_and_right_of_the_handle_come_from_the_two_chosen_images(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    root, html, _ = page
    assert _loaded(browser, html) == []
    card = browser.find_element(By.CSS_SELECTOR, '.card[data-set="Set14"][data-image="baboon"]')
    Select(card.find_element(By.CSS_SELECTOR, "select.choose-a")).select_by_value("nearest")
    Select(card.find_element(By.CSS_SELECTOR, "select.choose-b")).select_by_value("ground truth")
    slider = card.find_element(By.CSS_SELECTOR, ".slider")
    browser.execute_script("arguments[0].scrollIntoView()", slider)
    width = slider.rect["width"]
    assert width == 128  # shown at its own size, one screen pixel per image pixel
    # from the middle (where the handle starts) to a quarter of the width
    ActionChains(browser).move_to_element_with_offset(slider, 0, 0).click_and_hold().move_by_offset(
        -32, 0
    ).release().perform()
    assert float(slider.get_attribute("data-split")) == pytest.approx(0.25, abs=0.02)
    ActionChains(browser).move_to_element_with_offset(slider, 20, 0).perform()
    assert float(slider.get_attribute("data-split")) == pytest.approx(0.25, abs=0.02)  # released: it stays
    browser.execute_script("document.querySelectorAll('.tag, .box').forEach(t => t.style.display = 'none')")
    shot = np.asarray(Image.open(io.BytesIO(slider.screenshot_as_png)).convert("RGB")).astype(int)
    left_image = load_rgb(root / "data/sr/Set14/nearest/baboon.png")[0].astype(int)
    truth = load_rgb(root / "data/raw/test/Set14/baboon.png")[0].astype(int)
    handle = round(float(slider.get_attribute("data-split")) * width)
    left, right = np.s_[:, 2 : handle - 3], np.s_[:, handle + 3 : -2]
    assert np.abs(shot[left] - left_image[left]).mean() < 1.0  # the chosen left image, pixel for pixel
    assert np.abs(shot[left] - truth[left]).mean() > 5.0
    assert np.abs(shot[right] - truth[right]).mean() < 1.0  # the ground truth right of the handle
    assert np.abs(shot[right] - left_image[right]).mean() > 5.0


def test_the_zoom_follows_the_pointer_and_a_shift_click_pins_it(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, html, _ = page
    assert _loaded(browser, html) == []
    card = browser.find_element(By.CSS_SELECTOR, '.card[data-set="Set5"][data-image="bird"]')
    slider = card.find_element(By.CSS_SELECTOR, ".slider")
    browser.execute_script("arguments[0].scrollIntoView()", slider)
    zoom = card.find_element(By.CSS_SELECTOR, ".zoom.a")
    assert zoom.value_of_css_property("image-rendering") == "pixelated"
    ActionChains(browser).move_to_element_with_offset(slider, -40, -24).perform()  # near the top left
    near_top_left = card.get_attribute("data-zoom")
    ActionChains(browser).move_to_element_with_offset(slider, 40, 24).perform()  # bottom right
    near_bottom_right = card.get_attribute("data-zoom")
    assert near_top_left == "0,0,4" and near_bottom_right == "80,48,4"  # 48 px shown at 4x, kept inside
    split = slider.get_attribute("data-split")
    ActionChains(browser).key_down(Keys.SHIFT).click().key_up(Keys.SHIFT).perform()
    ActionChains(browser).move_to_element_with_offset(slider, -40, -24).perform()
    assert card.get_attribute("data-zoom") == near_bottom_right  # pinned where it was shift-clicked
    assert slider.get_attribute("data-split") == split  # and the split stayed where it was
    ActionChains(browser).key_down(Keys.SHIFT).click().key_up(Keys.SHIFT).perform()
    ActionChains(browser).move_to_element_with_offset(slider, 40, 24).perform()
    assert card.get_attribute("data-zoom") == near_bottom_right  # following the pointer again
    ActionChains(browser).move_to_element_with_offset(slider, -40, -24).perform()
    assert card.get_attribute("data-zoom") == near_top_left


def test_an_experiment_whose_outputs_are_not_in_the_cache_is_named_in_one_line(tmp_path):
    """A revision whose `dvc.lock`/.dvc names outputs this machine's cache lacks (an experiment whose
    refs came without `dvc exp pull`): the path and the way to get it, not a traceback."""
    from conftest import dvc_env, run_ok

    from srlab.errors import SrlabError
    from srlab.page import at_revision

    env = dvc_env(None)
    (tmp_path / "sr.png").write_bytes(b"an output")
    run_ok("git init -q && dvc init -q && dvc add -q sr.png && git add -A && git commit -qm run", tmp_path, env)
    rev = run_ok("git rev-parse HEAD", tmp_path, env).stdout.strip()
    assert at_revision(rev, str(tmp_path))("sr.png") == b"an output"
    with pytest.raises(FileNotFoundError):
        at_revision(rev, str(tmp_path))("never-there.tsv")
    run_ok("rm -rf .dvc/cache sr.png", tmp_path, env)
    with pytest.raises(SrlabError, match=rf"sr.png at {rev[:7]}: not in DVC's cache; .dvc exp pull"):
        at_revision(rev, str(tmp_path))("sr.png")
