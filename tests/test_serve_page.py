"""The page of `instructrec serve` in a real headless Chromium (Selenium): it loads from a live
server, takes a user or typed titles (with autocomplete from /items) and an instruction, and
shows the ranked titles the API returns, with and without the instruction."""

import os
import sys

import pytest

pytest.importorskip("fastapi", reason="the page test needs FastAPI: pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="the page test needs uvicorn: pip install '.[serve]'")
pytest.importorskip("httpx", reason="the page test needs httpx: pip install '.[dev]'")
pytest.importorskip("selenium", reason="the page test drives Chromium with selenium: '.[dev]'")

from conftest import ROOT, tiny_config  # noqa: E402
from live_server import LiveServer  # noqa: E402
from recbole_instructrec.quick_start.recommend import Recommender  # noqa: E402
from recbole_instructrec.quick_start.serve import create_app  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import page_screenshot as page  # noqa: E402

if not page.chromium_binary() or not page.chromedriver_binary():
    pytest.skip(
        "no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

WISH = "something that makes me laugh"


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_llm):
    # guidance 1: the instruction's own effect counts, so the two lists differ visibly
    settings = tiny_config(tmp_path_factory.mktemp("page"), tiny_llm, instruction_guidance=1.0)
    recommender = Recommender("tiny", None, settings)
    with LiveServer(create_app(recommender)) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    driver = page.start_browser()
    yield driver
    driver.quit()


def api_titles(live, **request):
    response = live.client.post("/recommend", json=dict(request, top_k=10))
    assert response.status_code == 200, response.text
    return [r["title"] for r in response.json()["items"]]


def test_page_ranks_a_users_items_with_and_without_the_instruction(live, browser, tmp_path):
    from selenium.webdriver.common.by import By

    asked, plain = page.ask(browser, live.url, WISH, user="u2")
    assert asked == api_titles(live, user="u2", instruction=WISH)
    assert plain == api_titles(live, user="u2")
    assert len(asked) == 10 and asked != plain  # the tiny model's scores move with the wish
    rows = browser.find_elements(By.CSS_SELECTOR, "#with-list li")
    assert all(row.find_element(By.CLASS_NAME, "categories").text for row in rows)
    assert all(float(row.find_element(By.CLASS_NAME, "score").text) for row in rows)
    assert WISH in browser.find_element(By.ID, "with-caption").text
    assert "tiny" in browser.find_element(By.ID, "info").text
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_page_takes_typed_titles_with_autocomplete(live, browser):
    from selenium.webdriver.common.by import By

    browser.get(live.url)
    browser.find_element(By.ID, "mode-titles").click()
    browser.find_element(By.ID, "title").send_keys("long")
    page.wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#title-options option"),
        seconds=60,
    )
    options = [
        o.get_attribute("value")
        for o in browser.find_elements(By.CSS_SELECTOR, "#title-options option")
    ]
    assert "Long Road (1981)" in options  # suggested from GET /items
    asked, plain = page.ask(browser, live.url, WISH, titles=["Long Road (1981)", "Cursed Harbor"])
    assert asked == api_titles(
        live, history_titles=["Long Road (1981)", "Cursed Harbor"], instruction=WISH
    )
    history = browser.find_element(By.ID, "history").text
    assert "Long Road (1981)" in history and "Cursed Harbor (1982)" in history


def test_page_shows_the_servers_error_message(live, browser):
    with pytest.raises(RuntimeError, match="User 'nobody' is not in dataset 'tiny'"):
        page.ask(browser, live.url, WISH, user="nobody", seconds=60)
    # and then serves the next request
    asked, _ = page.ask(browser, live.url, WISH, user="u1")
    assert asked == api_titles(live, user="u1", instruction=WISH)
