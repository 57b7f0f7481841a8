"""Browser: the Train form's sections stay as the user left them. After a preset (whose message
shows above the form for one rerun), an opened "Data and sampling" section stayed open only until
the next change: changing its "Training input" closed it."""
from __future__ import annotations

import pytest

from .conftest import assert_no_exception, running_app, wait_for_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def train_app(app_data_dir, tmp_path_factory):
    """An app server whose runs folder lies under the dataset roots (the page refuses one outside)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGLIB_CHECKPOINTS", str(tmp_path_factory.mktemp("checkpoints")))  # running_app passes it on
        with running_app(app_data_dir) as url:
            yield url


def _is_open(section) -> bool:
    return section.locator("details").get_attribute("open") is not None


def _choose(pg, label: str, option: str) -> None:
    box = pg.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)  # typing filters the options down to this one
    pg.get_by_role("option", name=option).wait_for(timeout=10_000)
    box.press("Enter")
    wait_for_app(pg)


def test_an_opened_section_stays_open_when_its_widgets_change(page, train_app):
    pg = page
    pg.goto(train_app)
    wait_for_app(pg)
    pg.get_by_role("link", name="Train").click()
    pg.get_by_text("New run", exact=True).wait_for(timeout=60_000)
    wait_for_app(pg)
    pg.get_by_role("button", name="Quick preset").click()  # its message sits above the form for one rerun
    wait_for_app(pg)
    section = pg.locator("[data-testid=stExpander]").filter(has_text="Data and sampling").first
    assert not _is_open(section)  # closed to start with
    section.locator("summary").click()
    wait_for_app(pg)
    assert _is_open(section)
    for option in ("Whole images", "Random square crops", "Automatic, from the image sizes"):
        _choose(pg, "Training input", option)
        assert_no_exception(pg)
        assert _is_open(section), f"'Data and sampling' closed after choosing {option!r}"
        assert pg.get_by_role("combobox", name="Training input").input_value() == option
