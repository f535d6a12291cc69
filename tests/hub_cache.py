"""A Hugging Face cache (``HF_HOME``) holding the tiny models under the real default hub ids.

With ``HF_HOME`` pointing at the folder this writes and ``HF_HUB_OFFLINE=1``, the app's defaults
resolve exactly as they do for a user whose cache already holds the real models:

* ``hub/models--google--flan-t5-base`` and ``hub/models--facebook--roberta-hate-speech-
  dynabench-r4-target``: huggingface_hub's cache layout (content-addressed ``blobs/``,
  ``snapshots/<commit>/`` of relative symlinks, ``refs/main`` naming the commit), holding the
  tiny T5 and the tiny classifier;
* ``datasets/knkarthick___dialogsum/default/0.0.0/<hash>/``: what ``datasets`` writes when it
  prepares the hub dataset ``knkarthick/dialogsum`` (the CSV builder's Arrow files and
  ``dataset_info.json``), built here from the local copy of the hub's CSV files. Offline,
  ``datasets.load_dataset("knkarthick/dialogsum", split=...)`` reads this cache.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from summarizer.data import DEFAULT_DATASET
from summarizer.cli import DEFAULT_BASE_MODEL
from summarizer.toxicity import DEFAULT_TOXICITY_MODEL

FAKE_COMMIT = "0" * 32 + "5eed7e57"  # 40 hex digits, like a git commit id


def add_model(hub: Path, repo_id: str, folder: Path, commit: str = FAKE_COMMIT) -> Path:
    """Put every file of ``folder`` into ``hub`` as the ``main`` revision of ``repo_id``.

    Returns the snapshot folder (what ``from_pretrained(repo_id)`` ends up reading).
    """
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / f.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def add_dialogsum(datasets_cache: Path, csv_folder: Path, repo_id: str = DEFAULT_DATASET,
                  fingerprint: str = "5eed7e57d1a10950") -> Path:
    """Prepare ``repo_id`` in ``datasets``' cache from ``dialogsum_{split}.csv`` files.

    ``datasets`` names a hub dataset's cache ``<namespace>___<name>/<config>/<version>/<hash>``;
    its CSV builder refuses data files outside the repo when given ``repo_id``, so the builder
    runs under the bare name and the prepared folder is moved to the hub name.
    """
    from datasets.packaged_modules.csv.csv import Csv

    name = repo_id.split("/")[-1]
    work = datasets_cache / "_build"
    builder = Csv(cache_dir=str(work), dataset_name=name, config_name="default", hash=fingerprint,
                  data_files={s: str(csv_folder / f"dialogsum_{s}.csv")
                              for s in ("train", "validation", "test")})
    builder.download_and_prepare()
    target = datasets_cache / repo_id.replace("/", "___") / "default" / "0.0.0" / fingerprint
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(builder.cache_dir, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def build_hf_home(root: Path, t5: Path, classifier: Path, dialogsum_csv: Path | None) -> Path:
    """Write an ``HF_HOME`` under ``root`` with the tiny models (and DialogSum when given) under
    the app's default hub ids; returns the ``HF_HOME`` folder."""
    home = root / "hf-home"
    add_model(home / "hub", DEFAULT_BASE_MODEL, t5)
    add_model(home / "hub", DEFAULT_TOXICITY_MODEL, classifier)
    if dialogsum_csv is not None:
        add_dialogsum(home / "datasets", dialogsum_csv)
    return home
