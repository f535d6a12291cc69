"""Untrusted files, the probe's six findings (issue 21, item 7): each refused by name, in time.

A CSV header of 100,000 repeated names (quadratic before: 12.7 s), a JSONL line nested too deeply
(a RecursionError that reached the client as ``{"error": null}``), a lesson that points a slot at a
pickle-only folder, upload refusals that counted records instead of file lines, a predictions
column named as the labs name their human summaries, and ``--rule lab`` printing best-reference
values for ROUGE-2/L/Lsum.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from summarizer.uploads import UploadError, read_dialogues


def test_a_header_of_repeated_column_names_is_refused_in_linear_time():
    data = (",".join(["name"] * 100_000) + ",dialogue\n").encode()  # 500 KB, under the 5 MB cap
    started = time.monotonic()
    with pytest.raises(UploadError, match="the column 'name' appears more than once"):
        read_dialogues(data, "wide.csv")
    assert time.monotonic() - started < 1  # before: minutes (list.count per column)


def test_a_deeply_nested_jsonl_line_is_named_not_a_recursion_error():
    good = json.dumps({"dialogue": "#Person1#: Hi.\n#Person2#: Hello."})
    deep = '{"dialogue": "#Person1#: Hi.", "extra": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(UploadError, match=r"line 3: JSON nested too deeply to read \(RecursionError\)"):
        read_dialogues(f"{good}\n\n{deep}\n".encode(), "deep.jsonl")


def test_upload_refusals_name_the_file_line_the_record_starts_on():
    # A quoted cell with two line breaks and a blank line: the second dialogue starts on line 6,
    # though it is the second record.
    csv_text = 'dialogue,id\n"#Person1#: A.\n#Person2#: B.\n#Person1#: C.",one\n\n"\x00",two\n'
    with pytest.raises(UploadError, match=r"^Dialogues file, line 6 \(dialogue 2\): "):
        read_dialogues(csv_text.encode(), "lines.csv")
    with pytest.raises(UploadError, match=r"line 6: 3 fields, the header has 2"):
        read_dialogues(('dialogue,id\n"#P1#: A.\n#P2#: B.\n#P1#: C.",one\n\n#P1#: x,two,extra\n').encode(), "f.csv")
    # JSONL lines end at \n only: a raw U+2028 inside a JSON string does not start a new line.
    first = '{"dialogue": "#Person1#: Hi.\u2028#Person2#: Hello."}'
    rows = read_dialogues(f"{first}\n".encode(), "sep.jsonl")
    assert len(rows) == 1 and rows[0]["dialogue"].startswith("#Person1#: Hi.")  # before: "line 1: not JSON"
    with pytest.raises(UploadError, match=r"^Dialogues file, line 3 \(dialogue 2\): 'dialogue' must be text"):
        read_dialogues(f'{first}\r\n\r\n{{"dialogue": 5}}\r\n'.encode(), "crlf.jsonl")


def _pickle_folder(tiny_t5: Path, folder: Path, evil: bool) -> Path:
    """The tiny T5 with its weights as ``pytorch_model.bin`` only: its own tensors, or a pickle that
    would run a command (``os.system``) when unpickled without restriction."""
    import torch
    from safetensors.torch import load_file

    folder.mkdir()
    for f in tiny_t5.iterdir():
        if f.suffix == ".json":
            shutil.copy(f, folder / f.name)

    class Evil:
        def __reduce__(self):
            return os.system, ("echo unpickled",)
    torch.save({"x": Evil()} if evil else load_file(tiny_t5 / "model.safetensors"), folder / "pytorch_model.bin")
    return folder


def test_a_lesson_pointing_a_slot_at_a_refused_pickle_folder_is_not_applied(tiny_t5, tiny_classifier, tmp_path):
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.inference.slots import ModelSlots
    from summarizer.lessons import Lesson, missing_sources
    from summarizer.toxicity import ToxicityScorer
    from ui.context import Studio
    from ui.lessons import apply_lesson

    evil = _pickle_folder(tiny_t5, tmp_path / "evil", evil=True)
    safe = _pickle_folder(tiny_t5, tmp_path / "safe", evil=False)
    studio = Studio(slots=ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu"),
                    toxicity=ToxicityScorer(str(tiny_classifier), device="cpu"), dataset=str(tmp_path),
                    runs_dir=tmp_path / "runs")
    lesson = Lesson(name="pickles", slots={"base": str(evil), "full": str(safe)})
    assert [n.split(":")[0] for n in missing_sources(lesson)] == [f"The base slot's source {evil}"]
    notes = apply_lesson(studio, lesson)
    assert studio.slots.source("base") == str(tiny_t5)  # refused by kind before applying
    assert any("holds pickle weights that cannot be loaded safely" in n and "safetensors" in n for n in notes)
    assert studio.slots.source("full") == str(safe)  # pickled tensors alone pass the restricted unpickler
    # every student's Summarize still works on the base the lesson could not replace
    assert studio.slots.generate(["base"], ["Summarize: #Person1#: Hi."], _greedy())["base"][0]


def _greedy():
    from summarizer.inference.generation import GenerationSettings

    return GenerationSettings(max_new_tokens=4)


def test_the_labs_human_baseline_column_is_refused_by_name():
    from summarizer.evaluation.predictions_file import PredictionsFileError, load_predictions

    rows = [{"id": "test_0", "dialogue": "#Person1#: Hi.", "references": ["They greet.", "A greeting."]}]
    with pytest.raises(PredictionsFileError, match="Column 'human_baseline_summaries' looks like the human reference"):
        load_predictions("id,human_baseline_summaries\ntest_0,They greet.\n", rows, "test")
    matched, summaries = load_predictions("id,base\ntest_0,They say hello.\n", rows, "test")  # a model still scores
    assert summaries == {"base": ["They say hello."]}


def test_rule_lab_in_the_evaluation_cli_prints_the_lab_values(dialogsum_dir, tmp_path, capsys):
    from summarizer.data import load_split
    from summarizer.evaluation.__main__ import main

    rows = load_split(dialogsum_dir, "test").select(range(4))
    lines = ["id,model"] + [f"{r['id']},\"{r['dialogue'].split(chr(10))[0][11:]}\"" for r in rows]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["--predictions", str(tmp_path / "p.csv"), "--dataset", str(dialogsum_dir), "--no-toxicity",
                 "--rule", "lab", "--bootstrap", "20", "--out", str(tmp_path / "out")])
    assert code == 0
    printed = {line[:30].strip(): line[30:].strip() for line in capsys.readouterr().out.splitlines() if line[:1] == "R"}
    import pandas as pd

    row = pd.read_csv(tmp_path / "out" / "results.csv").iloc[0]
    assert abs(row["rouge2_best"] - row["rouge2_lab"]) > 0.05  # the two rules differ on these dialogues
    for key, name in (("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum")):
        assert float(printed[f"{name} lab"]) == round(row[f"{key}_lab"], 1)
        assert f"{name} best" not in printed
