"""The path a user takes by default: no model or dataset flags, the real hub ids, a warm HF cache.

A Hugging Face cache in a temporary ``HF_HOME`` holds the tiny models under
``google/flan-t5-base`` and ``facebook/roberta-hate-speech-dynabench-r4-target`` and DialogSum
under ``knkarthick/dialogsum`` (``tests/hub_cache.py``). With ``HF_HUB_OFFLINE=1`` and no
``DIALOGSUM_DIR``, the commands a user types are run as they are: ``python app.py``, the
Evaluate CLI and each training method, as separate processes. Their outputs are compared with
what the tiny models give when loaded from their own folders.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import hub_cache
from tests.app_server import free_port
from tests.browser import click, element, new_driver, open_tab, requires_chromium, value, wait_for

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
SETTINGS = ("zero-shot", "", 2, 24, 0, "greedy", 0.7, 50, 1.0, 4, 42)


def user_env(hf_home: Path) -> dict:
    """The environment of a user with this HF cache: offline, no project variables, CPU."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIALOGSUM", "STUDIO_", "HF_", "TRANSFORMERS_"))}
    return {**env, **OFFLINE, "HF_HOME": str(hf_home), "STUDIO_DEVICE": "cpu",
            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, tiny_t5, tiny_classifier, dialogsum_dir) -> Path:
    return hub_cache.build_hf_home(tmp_path_factory.mktemp("hub"), tiny_t5, tiny_classifier, dialogsum_dir)


@pytest.fixture(scope="session")
def empty_hf_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("empty-hub") / "hf-home"


class AppProcess:
    """``python app.py [extra]`` in ``cwd``; waits until it serves, keeps its console output."""

    def __init__(self, hf_home: Path, cwd: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = cwd / "console.log"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(self.port), *extra],
                                     cwd=cwd, env=env or user_env(hf_home), stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 180
        while "Running on local URL" not in self.console():
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise AssertionError(f"app.py did not start:\n{self.console()}")
            time.sleep(0.5)

    def console(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def default_app(hf_home, tmp_path_factory):
    """``python app.py --port P`` with no other flag, from an empty folder."""
    app = AppProcess(hf_home, tmp_path_factory.mktemp("user-folder"))
    yield app
    app.stop()


def expected_summary(tiny_t5: Path, dialogue: str, max_new_tokens: int = 24) -> str:
    """What the tiny T5, loaded from its own folder, writes for the zero-shot prompt."""
    from summarizer.inference.generation import GenerationSettings
    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.prompts import build_prompt

    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu")
    prompt = build_prompt("zero-shot", dialogue, tokenizer=slots.tokenizer)
    return slots.generate(["base"], [prompt.text], GenerationSettings(max_new_tokens=max_new_tokens))["base"][0]


def test_start_says_where_each_default_comes_from(default_app):
    console = default_app.console()
    for line in ("base model google/flan-t5-base: in the Hugging Face cache",
                 "toxicity model facebook/roberta-hate-speech-dynabench-r4-target: in the Hugging Face cache",
                 "DialogSum dataset knkarthick/dialogsum: in the Hugging Face cache"):
        assert line in console


def test_default_app_loads_summarizes_compares_and_scores(default_app, tiny_t5, tiny_classifier):
    from summarizer.toxicity import ToxicityScorer

    client = default_app.client()
    dialogue, references, row = client.predict("test", 0, api_name="/load_dialogue")
    assert row.startswith("test #0 of 500, id test_0") and references.count("\n") == 2
    _, _, summary, _, rouge = client.predict(dialogue, *SETTINGS, api_name="/summarize")
    assert summary == expected_summary(tiny_t5, dialogue)
    assert len(rouge["references"]) == 3
    *_, results = client.predict(dialogue, 24, api_name="/compare")
    base = next(r for r in results["slots"] if r["slot"] == "base")
    assert base["summary"] == summary
    reward, p_hate, note = client.predict("You are a wonderful teacher", api_name="/toxicity")
    want = ToxicityScorer(str(tiny_classifier), device="cpu").score(["You are a wonderful teacher"])[0]
    assert reward == pytest.approx(want.reward, abs=1e-3) and p_hate == pytest.approx(want.p_hate, abs=1e-3)
    assert "Scored the whole text" in note


def test_default_app_scores_an_uploaded_predictions_file(default_app, tiny_t5, dialogsum_dir, tmp_path):
    """/score_predictions on the plain app, toxicity on: token lengths come from the default base
    model's tokenizer and the default toxicity model is the one recorded."""
    import pandas as pd
    from gradio_client import handle_file
    from transformers import AutoTokenizer

    from summarizer.data import load_split

    rows = list(load_split(dialogsum_dir, "test", limit=3))
    upload = tmp_path / "predictions.csv"
    # not the references themselves: a column equal to them is refused as a human-summary column
    mine = [f"In short: {r['references'][0]}" for r in rows]
    pd.DataFrame({"id": [r["id"] for r in rows], "mine": mine}).to_csv(upload, index=False)
    status, table, _, files = default_app.client().predict(handle_file(str(upload)), "test", True,
                                                             api_name="/score_predictions")
    assert "**3 dialogues**" in status and table["headers"] == ["Metric", "mine"]
    cells = dict(table["data"])
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    lengths = [len(tok(m, add_special_tokens=False).input_ids) for m in mine]
    assert cells["Summary length (tokens)"] == f"{sum(lengths) / len(lengths):.1f}"
    (results_json,) = [f for f in files if f.endswith("results.json")]
    meta = json.loads(Path(results_json).read_text())
    assert meta["toxicity_model"] == "facebook/roberta-hate-speech-dynabench-r4-target" and meta["ids"] == [
        r["id"] for r in rows]


def test_plain_start_probes_the_hub_and_works_offline_from_the_cache(hf_home, tiny_t5, tmp_path):
    """``python app.py`` exactly as a user types it: no offline variable, so the app probes the hub.

    ``HF_ENDPOINT`` (read by huggingface_hub and by datasets alike) is a closed local port; any
    other host would go through a closed local proxy (``no_proxy`` only for 127.0.0.1), so
    nothing can leave the machine. The app must say it works offline and serve from the cache.
    """
    closed = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in user_env(hf_home).items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(HF_ENDPOINT=closed, HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    app = AppProcess(hf_home, tmp_path, env=env)
    try:
        console = app.console()
        assert "The Hugging Face hub cannot be reached: working offline (HF_HUB_OFFLINE=1)." in console
        assert "base model google/flan-t5-base: in the Hugging Face cache" in console
        assert "DialogSum dataset knkarthick/dialogsum: in the Hugging Face cache" in console
        client = app.client()
        dialogue, references, row = client.predict("test", 0, api_name="/load_dialogue")
        assert row.startswith("test #0 of 500, id test_0") and references.count("\n") == 2
        _, _, summary, _, rouge = client.predict(dialogue, *SETTINGS, api_name="/summarize")
        assert summary == expected_summary(tiny_t5, dialogue) and len(rouge["references"]) == 3
    finally:
        app.stop()


@requires_chromium
def test_default_app_in_the_browser(default_app, tiny_t5, tmp_path):
    """A teacher's first minute: open the page, load the first test dialogue, summarize."""
    from transformers import AutoTokenizer

    from summarizer.prompts import build_prompt

    driver = new_driver(tmp_path / "profile", size="1400,1000")
    try:
        open_tab(driver, "Prompting", default_app.url)
        click(driver, "#prompting-load")
        wait_for(driver, lambda d: value(d, "#prompting-dialogue textarea").startswith("#Person1#: Ms. Dawson"))
        dialogue = value(driver, "#prompting-dialogue textarea")
        click(driver, "#prompting-run")
        # The ROUGE table comes with the last update only (streamed pieces leave it empty).
        wait_for(driver, lambda d: "ROUGE F-measure" in element(d, "#prompting-rouge").text, timeout=180)
        assert value(driver, "#prompting-summary textarea") == expected_summary(tiny_t5, dialogue, 200)
        # This dialogue is over 512 tokens for the tiny T5's tokenizer: the prompt is cut and says so.
        tok = AutoTokenizer.from_pretrained(tiny_t5)
        want = build_prompt("zero-shot", dialogue, tokenizer=tok)
        prompt = element(driver, "#prompting-prompt textarea").get_attribute("value")
        assert prompt == want.text and prompt.startswith("Summarize the following conversation.")
        tokens = len(tok(prompt).input_ids)  # </s> included
        info = value(driver, "#prompting-prompt-info textarea")
        assert info == "\n".join([f"{tokens} of 512 tokens; 0 example(s) in the prompt.", *want.notes]) and want.notes
    finally:
        driver.quit()


def test_offline_with_an_empty_cache_says_what_to_do(empty_hf_home, tmp_path):
    """No cache, no hub: the app still starts, and every message names the flag that fixes it."""
    from gradio_client.exceptions import AppError

    app = AppProcess(empty_hf_home, tmp_path)
    try:
        console = app.console()
        assert "base model google/flan-t5-base: unavailable" in console
        assert "--base-model models/flan-t5-base" in console and "--dataset FOLDER" in console
        client = app.client()
        with pytest.raises(AppError, match="--dataset FOLDER or DIALOGSUM_DIR=FOLDER"):
            client.predict("test", 0, api_name="/load_dialogue")
        started = time.time()
        with pytest.raises(AppError, match="--base-model"):
            client.predict("#Person1#: Hi.\n#Person2#: Hello.", *SETTINGS, api_name="/summarize")
        assert time.time() - started < 60  # no minute of retries before the message
    finally:
        app.stop()


def run_cli(hf_home: Path, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=user_env(hf_home), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.parametrize("engine", [(), ("--backend", "ct2", "--compute-type", "float32")],
                         ids=["torch", "ct2-float32"])
def test_evaluate_cli_defaults(engine, hf_home, tiny_t5, tmp_path, dialogsum_dir):
    """The Evaluate CLI with its default ids; with ct2 the hub model is converted into the HF cache
    and float32 greedy summaries equal PyTorch's."""
    from summarizer.data import load_split

    run_cli(hf_home, tmp_path, "-m", "summarizer.evaluation", "--n", "2", "--max-new-tokens", "16",
            "--bootstrap", "50", "--out", "out", "--quiet", *engine)
    meta = json.loads((tmp_path / "out" / "results.json").read_text())
    assert meta["dataset"] == "knkarthick/dialogsum" and meta["backend"] == ("ct2" if engine else "torch")
    assert [(m["model"], m["source"]) for m in meta["models"]] == [("base", "google/flan-t5-base")]
    import pandas as pd

    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    first = load_split(dialogsum_dir, "test", limit=1)[0]
    assert predictions["id"][0] == "test_0"
    assert predictions["base_summary"][0] == expected_summary(tiny_t5, first["dialogue"], 16)
    if engine:
        assert any((hf_home / "studio-ct2").iterdir())  # the conversion is cached under HF_HOME


def test_prompt_lab_cli_defaults(hf_home, tiny_t5, tmp_path, dialogsum_dir):
    """``python -m summarizer.prompt_lab`` with the default base model and dataset ids."""
    import pandas as pd

    from summarizer.data import load_split

    run_cli(hf_home, tmp_path, "-m", "summarizer.prompt_lab", "--preset", "zero-shot", "--n", "2",
            "--max-new-tokens", "16", "--bootstrap", "50", "--out", "out")
    lab = json.loads((tmp_path / "out" / "prompt_lab.json").read_text())
    assert lab["dataset"] == "knkarthick/dialogsum"
    outputs = pd.read_csv(tmp_path / "out" / "prompt_lab_outputs.csv")
    rows = {r["id"]: r for r in load_split(dialogsum_dir, "test")}
    for _, out in outputs.iterrows():
        assert out["T1_summary"] == expected_summary(tiny_t5, rows[out["id"]]["dialogue"], 16)


SMALL_RUN = ("--max_steps", "2", "--train_size", "8", "--val_size", "2", "--batch_size", "2",
             "--runs_dir", "runs")
PPO_RUN = ("--max_steps", "1", "--train_size", "4", "--batch_size", "4", "--mini_batch_size", "2",
           "--output_min_length", "6", "--output_max_length", "10", "--toxicity_samples", "2", "--runs_dir", "runs")


@pytest.mark.parametrize("method,flags", [("full", SMALL_RUN), ("lora", SMALL_RUN), ("ppo", PPO_RUN)])
def test_training_defaults(method, flags, hf_home, tmp_path):
    """Each method with its default base model, dataset and (PPO) toxicity model: only sizes given."""
    run_cli(hf_home, tmp_path, "-m", f"training.{method}", *flags)
    (run,) = (tmp_path / "runs").iterdir()
    status = json.loads((run / "status.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert status["state"] == "completed", status
    assert config["base_model"] == "google/flan-t5-base" and config["dataset"] == "knkarthick/dialogsum"
    if method == "ppo":
        assert config["toxicity_model"] == "facebook/roberta-hate-speech-dynabench-r4-target"
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (run / "model" / weights).is_file()
