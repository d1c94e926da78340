"""Keyboard and screen-reader basics (issue 14, item 10): a skip link first in the tab
order, a language select that arrow keys move through without switching the page, and
live counts and progress bars that assistive technology can follow."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_the_keyboard_reaches_the_content_and_chooses_a_language_on_enter(
    page, screenshot, committed
):
    sign_in(page, "ent.admin@acme.test", PASSWORD)
    expect(page.get_by_role("heading", name="Acme Test")).to_be_visible()

    # The first Tab lands on the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_test_id("skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    screenshot("keyboard-skip-link")
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()

    # Arrow keys move through the languages without switching; Enter chooses.
    switcher = page.get_by_label("Language")
    switcher.focus()
    page.evaluate("window.stillHere = true")  # gone if the page reloads
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(1500)  # a switch would have reloaded the page by now
    assert page.evaluate("window.stillHere === true"), "an arrow key switched the language"
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", re.compile("pt"))
    expect(page.get_by_label("Idioma")).to_be_visible()
    screenshot("keyboard-language-chosen")
    # And back with the mouse: a choice switches at once.
    page.get_by_label("Idioma").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
