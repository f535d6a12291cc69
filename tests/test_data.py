import pytest

from summarizer.data import LengthFilter, load_split


def test_csv_test_split_groups_three_references(dialogsum_dir):
    rows = load_split(dialogsum_dir, "test")
    assert len(rows) == 500
    assert rows[0]["id"] == "test_0" and len(rows[0]["references"]) == 3
    assert all(len(r) == 3 for r in rows["references"])


def test_official_and_csv_layouts_agree(dialogsum_dir):
    csv = load_split(dialogsum_dir, "test", limit=20)
    official = load_split(dialogsum_dir / "official", "test", limit=20)
    assert csv["id"] == official["id"]
    assert csv["dialogue"] == official["dialogue"]
    assert csv["references"] == official["references"]
    assert len(load_split(dialogsum_dir / "official", "validation")) == 500


def test_train_duplicates_stay_separate(dialogsum_dir):
    rows = load_split(dialogsum_dir, "train")
    assert len(rows) == 12460 and all(len(r) == 1 for r in rows["references"])


def test_length_filter(dialogsum_dir):
    rows = load_split(dialogsum_dir, "test", LengthFilter(200, 1000))
    assert 0 < len(rows) < 500
    assert all(200 < len(d) <= 1000 for d in rows["dialogue"])
    assert all(d == d.strip() for d in rows["dialogue"])


def test_local_csv_layout(tmp_path):
    (tmp_path / "dialogsum_test.csv").write_text(
        "id,dialogue,summary,topic\n"
        "test_0_1,\" A: hi \",s1,t\ntest_0_2,\" A: hi \",s2,t\ntest_1_1,B: yo,s3,u\n")
    rows = load_split(tmp_path, "test")
    assert rows["id"] == ["test_0", "test_1"]
    assert rows["references"] == [["s1", "s2"], ["s3"]]
    assert rows["dialogue"][0] == "A: hi"


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown split"):
        load_split(tmp_path, "dev")
    with pytest.raises(ValueError, match="No train file"):
        load_split(tmp_path, "train")
    with pytest.raises(FileNotFoundError):
        load_split(str(tmp_path / "nope" / "x"), "test")


def test_a_hub_id_goes_to_datasets_with_its_split(monkeypatch, dialogsum_dir):
    """``knkarthick/dialogsum`` contains a slash but is a hub id: it must reach
    ``datasets.load_dataset`` (it used to be refused as a missing folder)."""
    import datasets

    from summarizer import data

    calls = []
    real = datasets.load_dataset

    def fake(path, *args, **kwargs):
        if path == "knkarthick/dialogsum":
            calls.append((path, kwargs.get("split")))
            return real("csv", data_files=[str(dialogsum_dir / f"dialogsum_{kwargs['split']}.csv")], split="train")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    rows = data.load_split("knkarthick/dialogsum", "test", limit=2)
    assert calls == [("knkarthick/dialogsum", "test")]
    assert rows[0]["id"] == "test_0" and len(rows[0]["references"]) == 3


@pytest.mark.parametrize("source,error,words", [
    ("./no/such/folder", FileNotFoundError, "does not exist"),
    ("a/b/c", FileNotFoundError, "not a hub id"),
    (__file__, ValueError, "is a file"),
])
def test_local_looking_sources_are_refused_by_what_they_are(source, error, words):
    from summarizer.data import load_split

    with pytest.raises(error, match=words):
        load_split(source, "test")
