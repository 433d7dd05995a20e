"""
The chat page in real browsers, against the installed ``twistd chatservice
--web``, with native line clients (raw sockets) as the other people: one
scenario (:class:`ChatPageScenario`), run in headless Chromium driven by
Selenium through Debian's ``chromedriver``, and in headless Firefox (ESR)
driven by Mozilla's ``marionette_driver`` through Firefox's own Marionette
server (the protocol ``geckodriver`` itself speaks to Firefox; Debian has no
``geckodriver`` package).  One browser of each kind for the whole file
(starting one costs a few seconds).

Under CI (``CI=true``) a missing browser or driver fails the run
(``tests/conftest.py`` turns the skip into a failure; ``.ci/run`` installs
``chromium``, ``chromium-driver`` and ``firefox-esr`` from Debian).  Both are
pointed at the system's browsers, so nothing is downloaded (Selenium Manager
does not run).

``CHATSERVICE_SCREENSHOT=PATH`` saves a screenshot of the page
mid-conversation there from Chromium (``docs/web-page.png`` is made so), and
from Firefox beside it (``PATH`` with ``-firefox`` before its suffix).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    Process,
    chat_twistd,
    free_port,
    loopback_endpoint,
    temp_dir,
    wait_for,
)
from tests.test_chat_e2e import NcClient

CHROMEDRIVER = "/usr/bin/chromedriver"
#: Debian's Chromium is /usr/bin/chromium.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Debian's Firefox is /usr/bin/firefox-esr.
FIREFOXES = ("firefox-esr", "firefox")
#: Generous: only a hang fails (the page's reconnection backoff included).
WAIT = 45.0
#: The first session waits for Firefox's first window, which on a busy
#: 2-core machine takes 10 to 20 s.
FIREFOX_START = 120.0
WINDOW = (1000, 640)


def find_browser() -> tuple[str, str] | None:
    """The chromedriver and browser to drive, or ``None`` if either is missing."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if not os.path.exists(CHROMEDRIVER) or browser is None:
        return None
    return CHROMEDRIVER, browser


def start_browser(case: SynchronousTestCase) -> Any:
    """A headless Chromium, closed when the test ends."""
    found = find_browser()
    if found is None:
        raise case.skipTest(
            "chromium and chromium-driver are not installed (.ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path, browser_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--no-first-run",
    ):
        options.add_argument(argument)
    # Both paths given: Selenium Manager has nothing to look for.
    service = Service(executable_path=driver_path)
    browser = webdriver.Chrome(service=service, options=options)
    case.addCleanup(browser.quit)
    browser.set_script_timeout(10)
    return browser


def start_firefox(case: SynchronousTestCase, directory: Path) -> Any:
    """
    A headless Firefox with Marionette on, in a fresh profile under
    ``directory``, and a Marionette session to it; both ended when the test
    ends.  Marionette listens on a port the system chooses
    (``marionette.port`` 0), which Firefox writes in the profile's
    ``MarionetteActivePort``: parallel runs never collide on 2828.
    """
    firefox = next((path for name in FIREFOXES if (path := shutil.which(name))), None)
    if firefox is None:
        raise case.skipTest("firefox-esr is not installed (.ci/run installs it)")
    from marionette_driver.marionette import Marionette

    profile = directory / "firefox-profile"
    profile.mkdir()
    # Marionette applies WebDriver's recommended preferences itself (no
    # updates, no first-run pages, no telemetry); the port is ours.
    (profile / "user.js").write_text('user_pref("marionette.port", 0);\n')
    process = Process(
        case,
        [firefox, "--headless", "--marionette", "--no-remote", "--profile", profile],
        directory,
        "firefox",
    )
    active_port = profile / "MarionetteActivePort"
    wait_for(
        lambda: active_port.exists() and active_port.read_text().strip() != "",
        FIREFOX_START,
        process.describe,
    )
    browser = Marionette(host="127.0.0.1", port=int(active_port.read_text()))
    browser.start_session(timeout=FIREFOX_START)
    case.addCleanup(browser.delete_session)
    browser.set_window_rect(width=WINDOW[0], height=WINDOW[1])
    return browser


class ChatPageScenario:
    """
    The page in one browser, with native clients in the same rooms.  A
    browser's test case provides :meth:`startBrowser` (setting ``browser``,
    ``by`` and ``keys``: the driver and its library's ``By`` and ``Keys``,
    which name the same W3C WebDriver locators and key code points),
    :meth:`openPage`, :meth:`assertNoAlert` and :meth:`saveScreenshot`.
    """

    browser: Any
    by: Any
    keys: Any

    def startBrowser(self, directory: Path) -> None:
        raise NotImplementedError

    def openPage(self, url: str) -> None:
        raise NotImplementedError

    def assertNoAlert(self) -> None:
        """Fail if the page shows a dialog (``alert()`` ran)."""
        raise NotImplementedError

    def saveScreenshot(self, path: Path) -> None:
        raise NotImplementedError

    def startServer(self, name: str) -> Process:
        assert isinstance(self, SynchronousTestCase)
        server = Process(
            self,
            chat_twistd(
                self.chat_port,
                "--web",
                loopback_endpoint(self.web_port),
                "--history",
                "memory",
                # Two on joining; the page asks for older ones as needed.
                "--history-replay",
                "2",
            ),
            self.directory,
            name,
        )
        server.wait_for_output(r"web service listening")
        return server

    def text_in(self, selector: str) -> list[str]:
        """The text of every element matching a CSS selector."""
        return [
            e.text for e in self.browser.find_elements(self.by.CSS_SELECTOR, selector)
        ]

    def wait_text(self, selector: str, text: str) -> None:
        """Wait until an element matching ``selector`` shows ``text``."""
        wait_for(
            lambda: any(text in shown for shown in self.text_in(selector)),
            WAIT,
            lambda: f"{text!r} in {selector}: {self.text_in(selector)}",
        )

    def type_line(self, text: str) -> None:
        """Type a line in the page's input box and press Enter."""
        field = self.browser.find_element(self.by.ID, "input")
        field.send_keys(text, self.keys.ENTER)
        wait_for(lambda: field.get_property("value") == "", WAIT, lambda: "sent")

    def test_chatInTheBrowser(self) -> None:
        """
        A person on the page chats with native clients: messages both
        ways, markup shown as text (no element, no script), a private
        message reaches only its recipient, a notice shows as one and
        ``/notice`` typed sends one, and when the server restarts
        the page says so, reconnects on its own and rejoins its rooms.
        """
        assert isinstance(self, SynchronousTestCase)
        self.directory = temp_dir(self)
        self.chat_port, self.web_port = free_port(), free_port()
        server = self.startServer("server")
        self.startBrowser(self.directory)
        browser, by, keys = self.browser, self.by, self.keys
        self.openPage(f"http://127.0.0.1:{self.web_port}/")
        bob = NcClient(self, self.chat_port, "bob")
        eve = NcClient(self, self.chat_port, "eve")

        browser.find_element(by.ID, "nick").send_keys("alice", keys.ENTER)
        self.wait_text("#status", "Connected as alice")
        bob.expect("alice has joined #lobby")

        bob.send("hello from the terminal")
        self.wait_text(".log li.message", "hello from the terminal")
        self.type_line("hello from the browser")
        bob.expect("#lobby <alice> hello from the browser")

        hostile = "<img src=x onerror=alert(1)>"
        bob.send(hostile)
        self.wait_text(".log li.message .text", hostile)
        self.assertEqual(browser.find_elements(by.CSS_SELECTOR, "#logs img"), [])
        self.assertNoAlert()

        self.type_line("/msg bob only for bob")
        bob.expect("*alice* only for bob")
        bob.send("/msg alice only for alice")
        self.wait_text("#privates", "bob")
        eve.send("/whois eve")
        seen_by_eve = eve.expect("--- eve: in")
        self.assertNotIn("only for", seen_by_eve)

        self.type_line("/me waves at everyone")
        self.wait_text(".log li.message", "waves at everyone")
        # A notice shows as one (-nick-), as text; /notice typed sends one.
        bob.send("/notice #lobby deploy at <b>five</b>")
        self.wait_text(".log li.said-notice .text", "deploy at <b>five</b>")
        self.assertEqual(self.text_in(".log li.said-notice .nick"), ["-bob-"])
        self.assertEqual(browser.find_elements(by.CSS_SELECTOR, "#logs b"), [])
        self.type_line("/notice bob noted")
        bob.expect("-alice- noted")
        screenshot = os.environ.get("CHATSERVICE_SCREENSHOT")
        if screenshot:
            self.saveScreenshot(Path(screenshot).resolve())

        bob.send("/join #dev")
        for number in range(1, 5):
            bob.send(f"dev line {number}")
        bob.expect("#dev <bob> dev line 4")
        self.type_line("/join #dev")
        self.wait_text("#rooms", "#dev")
        # The replay on joining, then the older lines paged back.
        self.wait_text(".log li.history", "dev line 4")
        self.wait_text(".log li.history", "dev line 1")
        self.assertEqual(
            self.text_in(".log li.history .text"),
            [f"dev line {n}" for n in range(1, 5)],
        )
        self.type_line("/topic the web door")
        self.wait_text("#topic", "the web door")
        bob.expect("alice changed the topic of #dev to: the web door")
        # The topic's own editor, with the keyboard only.
        browser.find_element(by.ID, "topic-edit").send_keys(keys.ENTER)
        editor = browser.find_element(by.ID, "topic-text")
        editor.send_keys(keys.CONTROL, "a")
        editor.send_keys("edited on the page", keys.ENTER)
        bob.expect("alice changed the topic of #dev to: edited on the page")
        # A room not looked at counts what it missed.
        bob.send("/join #lobby")
        bob.send("said while alice looks at #dev")
        self.wait_text("#rooms .unread", "1")
        self.type_line("/join #lobby")  # a room one is in: switched to
        self.wait_text("#title", "#lobby")
        self.wait_text(".log li.message .text", "said while alice looks at #dev")
        self.assertEqual(self.text_in("#rooms .unread"), ["", ""])  # hidden: read
        # Alt+Up: the previous conversation (from the first: the last, #dev).
        browser.find_element(by.ID, "input").send_keys(keys.ALT, keys.ARROW_UP)
        self.wait_text("#title", "#dev")

        server.terminate()
        server.wait()
        self.wait_text("#status", "reconnecting")
        self.startServer("server2")
        self.wait_text("#status", "Connected as alice")
        carol = NcClient(self, self.chat_port, "carol")
        answers: list[str] = []

        def rejoined() -> bool:
            carol.received = b""
            carol.send("/whois alice")
            answers.append(carol.expect("--- alice: in"))
            return "#dev" in answers[-1]

        wait_for(rejoined, WAIT, lambda: f"alice back in #dev: {answers[-1:]}")
        carol.send("/join #dev")
        carol.send("after the restart")
        self.wait_text(".log li.message", "after the restart")


class WebPageInChromiumTests(ChatPageScenario, SynchronousTestCase):
    """The page in headless Chromium (Selenium and Debian's chromedriver)."""

    def startBrowser(self, directory: Path) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.browser = start_browser(self)
        self.by, self.keys = By, Keys

    def openPage(self, url: str) -> None:
        self.browser.get(url)

    def assertNoAlert(self) -> None:
        from selenium.common.exceptions import NoAlertPresentException

        with self.assertRaises(NoAlertPresentException):
            self.browser.switch_to.alert.text  # noqa: B018 - reading it is the check

    def saveScreenshot(self, path: Path) -> None:
        self.browser.save_screenshot(str(path))


class WebPageInFirefoxTests(ChatPageScenario, SynchronousTestCase):
    """The page in headless Firefox (Marionette, Mozilla's marionette_driver)."""

    def startBrowser(self, directory: Path) -> None:
        from marionette_driver.by import By
        from marionette_driver.keys import Keys

        self.browser = start_firefox(self, directory)
        self.by, self.keys = By, Keys

    def openPage(self, url: str) -> None:
        self.browser.navigate(url)

    def assertNoAlert(self) -> None:
        from marionette_driver.errors import NoAlertPresentException
        from marionette_driver.marionette import Alert

        with self.assertRaises(NoAlertPresentException):
            Alert(self.browser).text  # noqa: B018 - reading it is the check

    def saveScreenshot(self, path: Path) -> None:
        png = self.browser.screenshot(format="base64", full=False)
        path.with_name(f"{path.stem}-firefox{path.suffix}").write_bytes(
            base64.b64decode(png)
        )
