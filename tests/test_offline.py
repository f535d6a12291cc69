"""Offline never waits on the hub (issue 21, item 2).

The case of the issue: ``app.py`` (or a CLI) decides to work offline after huggingface_hub was
imported, so the hub's own switch, read at import, still says online; every load then retried the
hub five times (47 s) before transformers' "see how to run the library in offline mode". Here the
switch is put back to "online" while ``HF_HUB_OFFLINE=1`` says offline, and every attempt to reach
a host other than this machine is recorded and refused: a hub id that is not in the local cache
must be named at once, with the command that fixes it (the start-up note's tiny-model line), and
with no network attempt at all.
"""
from __future__ import annotations

import socket
import time

import pytest

from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import SlotConfig, SlotError
from summarizer.inference.slots import ModelSlots
from summarizer.preflight import TINY_HINT

UNCACHED = "studio-tests/not-cached-t5"  # a hub id no cache holds
TINY_COMMAND = "python -m tests.tiny_models --out tiny-models"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", None}


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Offline by the environment, the hub libraries' import-time switch left "online", and every
    lookup of a host other than this machine recorded and refused. Yields the recorded hosts."""
    import datasets.config
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    attempts: list[str] = []
    lookup = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in LOCAL_HOSTS:
            attempts.append(str(host))
            raise OSError(f"test: no network ({host})")
        return lookup(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return attempts


def test_an_uncached_base_is_named_at_once_on_either_engine(no_network):
    for backend in ("torch", "ct2"):
        if backend == "ct2":
            pytest.importorskip("ctranslate2")
        slots = ModelSlots(SlotConfig(base=UNCACHED), device="cpu", backend=backend)
        started = time.monotonic()
        with pytest.raises(SlotError) as caught:
            slots.generate(["base"], ["Summarize: #Person1#: Hi."], GenerationSettings(max_new_tokens=4))
        assert time.monotonic() - started < 2
        message = str(caught.value)
        assert f"The base model {UNCACHED} cannot be loaded offline" in message
        assert "--base-model models/not-cached-t5" in message and TINY_COMMAND in message and TINY_HINT in message
        with pytest.raises(SlotError, match="cannot be loaded offline"):
            slots.tokenizer_of("base")  # the tokenizer alone (the ct2 path's prompt builder) too
    assert no_network == []


def test_an_uncached_adapter_and_classifier_are_named_at_once(no_network, tiny_t5):
    from summarizer.toxicity import ToxicityScorer

    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu")
    with pytest.raises(SlotError, match=r"The lora model studio-tests/not-cached-t5 cannot be loaded offline.*--lora-model"):
        slots.set_source("lora", UNCACHED)  # Compare's Apply and a lesson go through here: refused before applying
    assert slots.source("lora") is None
    with pytest.raises(OSError, match=r"toxicity model studio-tests/not-cached-t5 cannot be loaded offline.*--toxicity-model"):
        ToxicityScorer(UNCACHED, device="cpu").load()
    assert no_network == []


def test_set_offline_env_also_switches_libraries_imported_before(no_network):
    import datasets.config
    import huggingface_hub.constants

    from summarizer.cli import set_offline_env

    set_offline_env()
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True  # transformers' is_offline_mode() reads this
    assert datasets.config.HF_HUB_OFFLINE is True and datasets.config.HF_DATASETS_OFFLINE is True


@pytest.mark.parametrize("which", ["base", "toxicity"])
def test_the_evaluation_cli_offline_exits_at_once_with_the_advice(which, no_network, monkeypatch, tiny_t5,
                                                                 tiny_classifier, tmp_path, capsys):
    """``--offline`` with a model not in the cache: status 2 at once, before any dialogue is read or
    summary generated (the dataset folder here is empty), naming the fix and the tiny models."""
    from summarizer.evaluation.__main__ import main

    monkeypatch.delenv("HF_HUB_OFFLINE")  # only the flag says offline, as a user types it
    base, toxicity = (UNCACHED, tiny_classifier) if which == "base" else (tiny_t5, UNCACHED)
    started = time.monotonic()
    code = main(["--offline", "--base-model", str(base), "--toxicity-model", str(toxicity), "--dataset",
                 str(tmp_path), "--n", "2", "--out", str(tmp_path / "out"), "--quiet"])
    assert time.monotonic() - started < 2
    assert code == 2
    err = capsys.readouterr().err
    assert f"{which if which == 'base' else 'toxicity'} model {UNCACHED} cannot be loaded offline" in err
    assert TINY_COMMAND in err and f"--{which}-model models/not-cached-t5" in err
    assert not (tmp_path / "out").exists() and no_network == []


def test_summarize_in_the_app_answers_within_two_seconds(no_network, tiny_classifier, tmp_path):
    """As ``python app.py`` does when the hub does not answer: gradio (and so huggingface_hub) is
    imported while parsing the logins, then ``set_offline_env`` switches to offline. Before, the hub
    kept its import-time "online": the first Summarize retried it five times (47 s)."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from summarizer.cli import set_offline_env
    from tests.app_server import running_app

    set_offline_env()  # app.go_offline_if_unreachable's switch, after huggingface_hub was imported
    (tmp_path / "data").mkdir()
    with running_app(UNCACHED, tiny_classifier, tmp_path / "data", tmp_path / "runs") as (_, url):
        client = Client(url, verbose=False)
        started = time.monotonic()
        with pytest.raises(AppError) as caught:
            client.predict("#Person1#: Hi.\n#Person2#: Hello.", "zero-shot", "", 2, 24, 0, "greedy", 0.7, 50,
                           1.0, 4, 42, api_name="/summarize")
        assert time.monotonic() - started < 2
    message = str(caught.value)
    assert f"{UNCACHED} cannot be loaded offline" in message and TINY_COMMAND in message
    assert no_network == []
