"""Drive the page of a running `instructrec serve` in headless Chromium (Selenium) and save a
screenshot: pick a user (or type liked titles), type an instruction, submit, wait for both
ranked lists.

    instructrec serve --dataset ml-100k --candidate-model <SASRec .pth> --top-n 50 &
    python scripts/page_screenshot.py --url http://127.0.0.1:8000 --user 1 \\
        --instruction "something scary for tonight" --out docs/serve.png

Needs `selenium` and the system's Chromium with its driver (Debian: chromium, chromium-driver).
tests/test_serve_page.py drives the page with the same functions.
"""

import argparse
import shutil

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "chromium-driver")


def chromium_binary():
    return next((path for path in map(shutil.which, CHROMIUM) if path), None)


def chromedriver_binary():
    return next((path for path in map(shutil.which, DRIVERS) if path), None)


def start_browser(width=1280, height=1000):
    """Headless Chromium under Selenium, from the system's binaries (no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver_binary()), options=options)


def wait(driver, condition, seconds=300):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(condition)


def ask(driver, url, instruction, user=None, titles=(), seconds=300):
    """Load the page, fill it in, submit; return the titles of both lists once shown."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(driver, lambda d: "Loading" not in d.find_element(By.ID, "info").text, seconds)
    if titles:
        driver.find_element(By.ID, "mode-titles").click()
        box = driver.find_element(By.ID, "title")
        for title in titles:
            box.send_keys(title)
            driver.find_element(By.ID, "add-title").click()
    else:
        driver.find_element(By.ID, "user").send_keys(str(user))
    driver.find_element(By.ID, "instruction").send_keys(instruction)
    driver.find_element(By.ID, "submit").click()
    return shown_lists(driver, seconds)


def shown_lists(driver, seconds=300):
    """(titles with the instruction, titles without it) once the results are on the page;
    raises with the page's error message if it shows one."""
    from selenium.webdriver.common.by import By

    def done(d):
        error = d.find_element(By.ID, "error")
        if error.is_displayed():
            return "error"
        results = d.find_element(By.ID, "results")
        return results.is_displayed() and not d.find_element(By.ID, "submit").get_attribute(
            "disabled"
        )

    if wait(driver, done, seconds) == "error":
        raise RuntimeError(driver.find_element(By.ID, "error").text)

    def titles(list_id):
        found = driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li .title")
        return [node.text for node in found]

    return titles("with-list"), titles("without-list")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="1")
    parser.add_argument("--title", action="append", default=[], help="liked title (repeatable)")
    parser.add_argument("--instruction", default="something scary for tonight")
    parser.add_argument("--out", default="docs/serve.png")
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    driver = start_browser(height=args.height)
    try:
        asked, plain = ask(driver, args.url, args.instruction, args.user, args.title)
        driver.save_screenshot(args.out)
    finally:
        driver.quit()
    print(f"{args.out}: with the instruction {asked[:3]}..., without it {plain[:3]}...")


if __name__ == "__main__":
    main()
