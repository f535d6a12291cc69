"""Preference pairs from the Arena (summarizer/arena/preferences.py): each A/B vote is one pair
with the prompt that was served; ties and 'both bad' are counted and left out; the store, its
votes export and the exported JSONL give the same pairs; class sessions; refusals by name.
No model: the served pairs come from a stand-in for the model slots that records its prompts.
"""
from __future__ import annotations

import json
import random
import sqlite3

import pytest

from summarizer.arena.preferences import (MIN_PAIRS, PreferenceError, export_preferences, load_preferences,
                                          pairs_from_votes)
from summarizer.arena.store import ArenaStore, serve_pair
from summarizer.inference.generation import GenerationSettings


class RecordingSlots:
    """Two filled slots whose summaries name the slot and the prompt's number; records prompts."""

    def __init__(self, tokenizer):
        self.tokenizer, self.prompts, self.n = tokenizer, [], 0

    def is_filled(self, slot):
        return slot in ("base", "lora")

    def source(self, slot):
        return f"src-{slot}"

    def answer(self, slots, prompts, settings):
        self.prompts += prompts
        self.n += 1
        # "-" first: a cell a spreadsheet would run, escaped by the export and restored on reading
        return {s: [f"-{s} summary {self.n}"] for s in slots}


ROWS = [{"id": f"test_{i}", "dialogue": f"#Person1#: Hello number {i}.\n#Person2#: Hi {i}!"} for i in range(12)]


def served_store(tmp_path, votes):
    """A store with one served pair per vote in ``votes``, voted in order; returns (store, slots, pairs)."""
    store = ArenaStore(tmp_path / "arena.sqlite3")
    slots = RecordingSlots(None)  # no tokenizer: build_prompt returns the prompt unchecked
    rng = random.Random(0)
    served = []
    for vote in votes:
        pair = serve_pair(store, slots, ROWS, "browser-1", rng, GenerationSettings(max_new_tokens=8))
        store.vote(pair.pair_id, vote, "browser-1")
        served.append(pair)
    return store, slots, served


def test_each_ab_vote_is_one_pair_with_the_served_prompt(tmp_path):
    votes = ["A", "B", "tie", "A", "both bad", "B", "A", "tie", "B", "A"]
    store, slots, served = served_store(tmp_path, votes)
    found = load_preferences(store.path)
    assert len(found.pairs) == 7 and found.left_out == {"tie": 2, "both bad": 1}
    assert "left out: 2 ties, 1 'both bad' votes" in found.describe()
    kept = [(p, v) for p, v in zip(served, votes) if v in "AB"]
    for pref, (pair, vote) in zip(found.pairs, kept):
        assert pref.prompt == slots.prompts[served.index(pair)] and pref.prompt.endswith("Summary: ")
        assert pair.dialogue in pref.prompt  # the served dialogue, in the served prompt
        win, lose = (pair.summary_a, pair.summary_b) if vote == "A" else (pair.summary_b, pair.summary_a)
        assert (pref.chosen, pref.rejected, pref.pair_id) == (win, lose, pair.pair_id)
        assert pref.chosen_model == (pair.model_a if vote == "A" else pair.model_b)


def test_store_export_and_jsonl_give_the_same_pairs(tmp_path):
    store, _, _ = served_store(tmp_path, ["A", "B", "A", "tie", "B", "A", "B", "A", "A"])
    from_store = load_preferences(store.path, "all")
    csv_file = store.export_csv(tmp_path / "votes.csv")
    assert ",'-" in csv_file.read_text(encoding="utf-8")  # the summaries were escaped for spreadsheets
    from_csv = load_preferences(csv_file, "all")
    assert from_csv.pairs == from_store.pairs and from_csv.left_out == from_store.left_out == {"tie": 1}
    assert from_store.pairs[0].chosen.startswith("-")  # and read back unescaped
    out = export_preferences(from_store.pairs, tmp_path / "prefs.jsonl")
    assert load_preferences(out).pairs == from_store.pairs
    import datasets

    loaded = datasets.load_dataset("json", data_files=str(out), split="train")
    assert loaded["prompt"] == [p.prompt for p in from_store.pairs]
    assert loaded["chosen"] == [p.chosen for p in from_store.pairs] and "login" not in loaded.column_names


def test_class_sessions_current_all_and_by_name(tmp_path):
    store, slots, _ = served_store(tmp_path, ["A"] * 3)
    first = store.current_class()
    second = store.new_class("Tuesday")
    rng = random.Random(1)
    for vote in ["B", "B", "tie"]:
        pair = serve_pair(store, slots, ROWS, "browser-1", rng, GenerationSettings(max_new_tokens=8))
        store.vote(pair.pair_id, vote, "browser-1")
    assert len(load_preferences(store.path).pairs) == 2  # current = Tuesday
    assert len(load_preferences(store.path, "all").pairs) == 5
    assert len(load_preferences(store.path, "Tuesday").pairs) == 2
    assert len(load_preferences(store.path, first["id"]).pairs) == 3
    export = store.export_csv(tmp_path / "v.csv")
    assert [p.class_session for p in load_preferences(export).pairs] == [second["id"]] * 2  # newest vote's
    with pytest.raises(PreferenceError, match="class_session 'Monday' is not in .*Tuesday"):
        load_preferences(store.path, "Monday")


def test_fewer_than_eight_pairs_refused_by_name(tmp_path):
    store, _, _ = served_store(tmp_path, ["A"] * (MIN_PAIRS - 1) + ["tie"] * 3)
    found = load_preferences(store.path)
    with pytest.raises(PreferenceError, match=r"Too few preference pairs.*7 preference pair.*3 ties.*at least 8"):
        found.require()
    assert len(found.pairs) == 7


def test_old_store_without_prompts_and_old_export(tmp_path):
    db = sqlite3.connect(tmp_path / "arena.sqlite3")  # the schema before prompts were recorded
    db.executescript("""
        CREATE TABLE class_sessions (id TEXT PRIMARY KEY, name TEXT NOT NULL, started_at REAL NOT NULL);
        CREATE TABLE pairs (pair_id TEXT PRIMARY KEY, browser_session TEXT NOT NULL, class_session TEXT NOT NULL,
            dialogue_id TEXT NOT NULL, model_a TEXT NOT NULL, source_a TEXT NOT NULL, model_b TEXT NOT NULL,
            source_b TEXT NOT NULL, summary_a TEXT NOT NULL, summary_b TEXT NOT NULL, served_at REAL NOT NULL);
        CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL UNIQUE, class_session TEXT
            NOT NULL, browser_session TEXT NOT NULL, dialogue_id TEXT NOT NULL, model_a TEXT NOT NULL, source_a TEXT
            NOT NULL, model_b TEXT NOT NULL, source_b TEXT NOT NULL, vote TEXT NOT NULL, voted_at REAL NOT NULL);
        INSERT INTO class_sessions VALUES ('c1', 'old class', 1.0);
        INSERT INTO pairs VALUES ('p1', 'b', 'c1', 'd1', 'base', 's', 'lora', 's', 'x', 'y', 2.0);
        INSERT INTO votes VALUES (1, 'p1', 'c1', 'b', 'd1', 'base', 's', 'lora', 's', 'A', 3.0);
    """)
    db.commit()
    db.close()
    found = load_preferences(tmp_path / "arena.sqlite3")
    assert found.pairs == [] and found.left_out == {"no prompt": 1}
    old_export = tmp_path / "old.csv"
    old_export.write_text("vote_id,class_session,vote,winner\n1,c1,A,base\n", encoding="utf-8")
    with pytest.raises(PreferenceError, match="without the column.*prompt.*export the votes again"):
        load_preferences(old_export)


def test_plain_files_and_refusals(tmp_path):
    plain = tmp_path / "p.csv"
    plain.write_text('prompt,chosen,rejected,extra\n"Summarize: a, b",good,bad,1\nq,same,same,2\n', encoding="utf-8")
    found = load_preferences(plain)
    assert [(p.prompt, p.chosen, p.rejected) for p in found.pairs] == [("Summarize: a, b", "good", "bad")]
    assert found.left_out == {"same text": 1}
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": "x", "chosen": "y", "rejected": "z"}) + "\n" +
                     json.dumps({"prompt": "x", "chosen": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(PreferenceError, match="row 2 has no rejected"):
        load_preferences(jsonl)
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(PreferenceError, match="not an Arena store"):
        load_preferences(other)
    with pytest.raises(PreferenceError, match="does not exist"):
        load_preferences(tmp_path / "missing.csv")


def test_same_text_pairs_left_out():
    votes = [{"vote": "A", "prompt": "p", "summary_a": "s", "summary_b": "s"},
             {"vote": "B", "prompt": "p", "summary_a": "s", "summary_b": "t"}]
    found = pairs_from_votes(votes)
    assert [(p.chosen, p.rejected) for p in found.pairs] == [("t", "s")] and found.left_out == {"same text": 1}
