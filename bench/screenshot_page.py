"""The README's picture of the results page: one test image's card, two methods chosen, the split
dragged to a third, the zoom pinned on a detail (shift-click). Debian's chromium and chromium-driver, headless.

    python bench/screenshot_page.py reports/page/index.html docs/images/page.png
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", default="Set5")
    parser.add_argument("--image", default="butterfly")
    parser.add_argument("--left", default="srcnn_mse")
    parser.add_argument("--right", default="ground truth")
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--window-size=1100,900", "--force-device-scale-factor=1"]
    for flag in flags + [f"--user-data-dir={tempfile.mkdtemp()}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(args.page.resolve().as_uri())
        card = driver.find_element(By.CSS_SELECTOR, f'.card[data-set="{args.set}"][data-image="{args.image}"]')
        Select(card.find_element(By.CSS_SELECTOR, "select.choose-a")).select_by_value(args.left)
        Select(card.find_element(By.CSS_SELECTOR, "select.choose-b")).select_by_value(args.right)
        slider = card.find_element(By.CSS_SELECTOR, ".slider")
        driver.execute_script("arguments[0].scrollIntoView()", card)
        third = slider.rect["width"] / 3 - slider.rect["width"] / 2  # offsets are from the centre
        drag = ActionChains(driver).move_to_element_with_offset(slider, 0, 0).click_and_hold()
        drag.move_to_element_with_offset(slider, third, 0).release().perform()
        ActionChains(driver).move_to_element_with_offset(slider, 40, -30).perform()
        ActionChains(driver).key_down(Keys.SHIFT).click().key_up(Keys.SHIFT).perform()  # the zoom pinned there
        driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
        args.out.parent.mkdir(parents=True, exist_ok=True)
        card.screenshot(str(args.out))
    finally:
        driver.quit()
    print(f"{args.page} -> {args.out}")


if __name__ == "__main__":
    main()
