"""Screenshots of every tab at 1400x1000 (a projector), as a teacher would use them, for the README.

    python scripts/screenshots.py [--out docs/assets] [--presenter]
    python scripts/screenshots.py --class-view     # the teacher's Class tab during an Arena round
    python scripts/screenshots.py --teacher-path   # the tiny-model line, the response task, the Arena's first pair

Starts the app in-process on the tiny offline models (built and cached like the tests do, so it
needs the real DialogSum: ``$DIALOGSUM_DIR`` or ``../shared/data/dialogsum``), fills the LoRA
slot with a random adapter and the full slot with the tiny T5, then drives headless Chromium
(Debian's chromium + chromium-driver): Prompting (few-shot), Compare, Toxicity, Train, Evaluate
(5 dialogues), Prompt Lab and Arena. Writes ``screenshot-<tab>.png`` (viewport, not full page,
so each image is what a class sees without scrolling). The tiny models write nonsense: the
images show the layout, not summary quality.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "assets", help="folder for the PNGs (default: docs/assets/)")
    p.add_argument("--presenter", action="store_true", help="take them in presenter mode (suffix -presenter)")
    p.add_argument("--class-view", action="store_true",
                   help="only screenshot-class.png: a teacher and three students, two of them voting in the Arena")
    p.add_argument("--teacher-path", action="store_true",
                   help="only screenshot-tiny-line.png, screenshot-task-response.png and screenshot-arena-first-pair.png")
    return p.parse_args(argv)


def models(work: Path) -> dict:
    """Tiny T5, classifier and a random LoRA adapter (cached as the tests cache them)."""
    from tests import conftest, tiny_models

    t5 = conftest._cached("t5", tiny_models.build_t5)
    return {"t5": t5, "toxicity": conftest._cached("toxicity", tiny_models.build_classifier),
            "lora": conftest.make_adapter(t5, work / "lora", fresh=False, seed=1)}


def shoot(driver, out: Path, name: str, anchor: str | None = None) -> None:
    """Save the viewport, scrolled so that ``anchor`` (a CSS selector) is at the top."""
    from tests.browser import wait_for

    wait_for(driver, lambda d: not d.find_elements("css selector", ".progress-text, .eta-bar"), timeout=300)
    if anchor:
        driver.execute_script(f"document.querySelector({anchor!r}).scrollIntoView({{block: 'start'}});")
    else:
        driver.execute_script("window.scrollTo(0, 0);")
    path = out / name
    driver.save_screenshot(str(path))
    print("wrote", path, flush=True)


def take(driver, url: str, out: Path, suffix: str) -> None:
    """One screenshot per tab after the action a teacher would take there."""
    from selenium.webdriver.common.by import By

    from tests.browser import click, element, open_tab, set_number, value, wait_for

    open_tab(driver, "Prompting", url)
    if suffix:
        click(driver, "#presenter-toggle input")
    click(driver, "#prompting-load")
    wait_for(driver, lambda d: value(d, "#prompting-dialogue textarea"))
    driver.find_element(By.XPATH, "//*[@id='prompting-mode']//label[normalize-space(.)='few-shot']").click()
    click(driver, "#prompting-run")
    wait_for(driver, lambda d: value(d, "#prompting-summary textarea"), timeout=300)
    shoot(driver, out, f"screenshot-prompting{suffix}.png", "#prompting-mode")

    open_tab(driver, "Compare")
    click(driver, "#compare-load")
    wait_for(driver, lambda d: value(d, "#compare-dialogue textarea"))
    set_number(driver, "#compare-max-new input", 40)
    click(driver, "#compare-run")
    wait_for(driver, lambda d: value(d, "#compare-scores-lora textarea").startswith("reward"), timeout=300)
    shoot(driver, out, f"screenshot-compare{suffix}.png", "#compare-max-new")

    open_tab(driver, "Toxicity")
    box = element(driver, "#toxicity-text textarea")
    box.send_keys("#Person1# thanks #Person2# for the help with the report.")
    wait_for(driver, lambda d: value(d, "#toxicity-reward input") or value(d, "#toxicity-reward textarea"), timeout=120)
    shoot(driver, out, f"screenshot-toxicity{suffix}.png")

    open_tab(driver, "Train")
    shoot(driver, out, f"screenshot-train{suffix}.png")

    open_tab(driver, "Evaluate")
    set_number(driver, "#evaluate-n input", 5)
    set_number(driver, "#evaluate-max-new input", 40)
    click(driver, "#evaluate-run")
    element(driver, "#evaluate-results table", timeout=600)
    shoot(driver, out, f"screenshot-evaluate{suffix}.png", "#evaluate-run")

    open_tab(driver, "Prompt Lab")
    set_number(driver, "#lab-n input", 5)
    click(driver, "#lab-run")
    element(driver, "#lab-table table", timeout=600)
    shoot(driver, out, f"screenshot-prompt-lab{suffix}.png", "#lab-run")

    open_tab(driver, "Arena")  # shows the first pair by itself; a click on New pair would race it
    wait_for(driver, lambda d: value(d, "#arena-summary-b textarea"), timeout=300)
    click(driver, "#arena-vote-a")
    wait_for(driver, lambda d: value(d, "#arena-reveal textarea"), timeout=120)
    shoot(driver, out, f"screenshot-arena{suffix}.png", "#arena-dialogue")


CLASS_LOGINS = {"teacher": "t-pass", "ann": "a-pass", "ben": "b-pass", "chloe": "c-pass"}


def log_in(driver, url: str, user: str) -> None:
    """Fill Gradio's login form as ``user`` and wait for the page."""
    from selenium.webdriver.common.by import By

    from tests.browser import element

    driver.get(url)
    element(driver, "input[type=password]")
    driver.find_element(By.CSS_SELECTOR, "input[type=text], input:not([type])").send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(CLASS_LOGINS[user])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit], button").click()


def class_scene(driver, url: str, out: Path) -> None:
    """Students summarize, compare and vote through the API; the teacher's Class tab shows it."""
    from gradio_client import Client

    from tests.browser import open_tab, wait_for

    students = {name: Client(url, auth=(name, CLASS_LOGINS[name]), verbose=False) for name in ("ann", "ben", "chloe")}
    for k, (name, client) in enumerate(students.items()):
        dialogue, _, _ = client.predict("test", 10 + k, api_name="/load_dialogue")
        client.predict(dialogue, "zero-shot", "", 2, 30, 0, "greedy", 0.7, 50, 1.0, 4, 42, api_name="/summarize")
        if name != "chloe":  # two vote, one is still reading
            for vote in ("A", "tie"):
                pair = client.predict(api_name="/arena_next")
                client.predict(pair["pair_id"], vote, api_name="/arena_vote")
    log_in(driver, url, "teacher")
    open_tab(driver, "Class")
    wait_for(driver, lambda d: "students here now" in d.find_element("css selector", "#class-caption").text, timeout=60)
    shoot(driver, out, "screenshot-class.png", "#class-caption")


def teacher_path(driver, url: str, out: Path) -> None:
    """The page's top (the tiny-model line), the response task loaded (context and next turn), and
    the Arena as it opens (its first pair shown without a click)."""
    from selenium.webdriver.common.by import By

    from tests.browser import click, open_tab, value, wait_for

    open_tab(driver, "Prompting", url)
    wait_for(driver, lambda d: "Test-size models" in d.find_element(By.ID, "tiny-model-line").text, timeout=60)
    shoot(driver, out, "screenshot-tiny-line.png")
    driver.find_element(By.XPATH, "//*[@id='task']//label[normalize-space(.)='response']").click()
    click(driver, "#prompting-load")
    wait_for(driver, lambda d: value(d, "#prompting-references textarea").startswith("Next turn"), timeout=120)
    shoot(driver, out, "screenshot-task-response.png", "#prompting-split")
    open_tab(driver, "Arena")
    wait_for(driver, lambda d: value(d, "#arena-summary-b textarea"), timeout=300)
    shoot(driver, out, "screenshot-arena-first-pair.png", "#arena-dialogue")


def main(argv=None) -> int:
    args = parse_args(argv)
    from tests.app_server import running_app
    from tests.browser import new_driver
    from summarizer.data import default_local_dataset

    dataset = default_local_dataset()
    if dataset is None:
        print("error: needs the real DialogSum ($DIALOGSUM_DIR or ../shared/data/dialogsum)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        m = models(work)
        logins = ()
        if args.class_view:
            logins = ("--auth", f"teacher:{CLASS_LOGINS['teacher']}",
                      *(x for name in ("ann", "ben", "chloe") for x in ("--student-auth", f"{name}:{CLASS_LOGINS[name]}")))
        with running_app(m["t5"], m["toxicity"], dataset, work / "runs", logins, full=m["t5"], lora=m["lora"]) as (_, url):
            driver = new_driver(work / "profile", size="1400,1000")
            try:
                if args.class_view:
                    class_scene(driver, url, args.out)
                elif args.teacher_path:
                    teacher_path(driver, url, args.out)
                else:
                    take(driver, url, args.out, "-presenter" if args.presenter else "")
            finally:
                driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
