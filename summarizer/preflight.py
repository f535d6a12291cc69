"""First-start check: where each model and the dataset will come from, before anything loads.

    from summarizer.preflight import check_sources
    for line in check_sources(base, toxicity, dataset): print(line.text)

For the base model, the toxicity model and DialogSum the check says one of: a local folder, in
the Hugging Face cache (``$HF_HOME``), to be downloaded on first use (with its size when the hub
can tell), or unavailable (offline and not cached) together with the flag or environment
variable that fixes it. Nothing is downloaded here; the hub is asked only for file sizes, with a
short timeout, and never when offline (``HF_HUB_OFFLINE=1``).

:func:`hub_reachable` lets ``app.py`` switch to offline mode at start when the hub cannot be
reached, so that the first Summarize fails at once with a clear message instead of retrying
for about a minute (huggingface_hub's retries) before saying it could not connect.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Which app flag (and environment variable) sets each source, for the messages.
FLAGS = {"base": "--base-model", "toxicity": "--toxicity-model", "dataset": "--dataset"}
ENV_VARS = {"dataset": "DIALOGSUM_DIR"}
WHAT = {"base": "base model", "toxicity": "toxicity model", "dataset": "DialogSum dataset"}
LOCAL, CACHED, DOWNLOAD, MISSING = "local folder", "in the Hugging Face cache", "to be downloaded", "unavailable"
TINY_HINT = ("To try the app with no download at all, build the tiny test models "
             "(`python -m tests.tiny_models --out tiny-models`, a few minutes; their output is "
             "nonsense) and start `python app.py --offline --base-model tiny-models/t5 "
             "--toxicity-model tiny-models/toxicity --dataset FOLDER`.")


@dataclass(frozen=True)
class SourceCheck:
    """Where one source comes from.

    Attributes:
        role: ``base``, ``toxicity`` or ``dataset``.
        source: the hub id or folder as given.
        where: one of :data:`LOCAL`, :data:`CACHED`, :data:`DOWNLOAD`, :data:`MISSING`.
        size_bytes: download size when the hub told it (``DOWNLOAD`` only), else None.
        fix: what to do when ``where`` is ``MISSING`` (names the flag or variable), else "".
    """

    role: str
    source: str
    where: str
    size_bytes: int | None = None
    fix: str = ""

    @property
    def text(self) -> str:
        """One line for the console and the page, e.g. ``base model google/flan-t5-base: to be
        downloaded on first use (about 990 MB)``."""
        head = f"{WHAT[self.role]} {self.source}: {self.where}"
        if self.where == DOWNLOAD:
            size = f" (about {human_size(self.size_bytes)})" if self.size_bytes else ""
            return f"{head} on first use{size}, into the Hugging Face cache ($HF_HOME)."
        if self.where == MISSING:
            return f"{head}. {self.fix}"
        return head + "."


def human_size(n: int | None) -> str:
    """``n`` bytes as ``"990 MB"`` / ``"1.3 GB"`` (decimal units, as the hub shows them)."""
    if not n:
        return "unknown size"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{max(1, round(n / 1e6))} MB"


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (huggingface_hub's own reading)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when the hub endpoint answers an HTTP request within ``timeout_s`` seconds.

    Never called in offline mode (callers check :func:`offline` first).
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint + "/api/whoami-v2", method="HEAD"),
                               timeout=timeout_s)
    except urllib.error.HTTPError:
        return True  # it answered (401 without a token): reachable
    except (OSError, ValueError):
        return False
    return True


def _model_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


def _dataset_cached(repo_id: str) -> bool:
    """True when ``datasets`` has prepared ``repo_id`` in its cache (what it reads offline)."""
    import datasets.config

    folder = Path(datasets.config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")
    return any(p.is_dir() for p in folder.glob("*/*/*"))


def _download_size(repo_id: str, repo_type: str) -> int | None:
    """Bytes the first use downloads (weights in one format, plus small files), or None."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        info = (api.model_info(repo_id, files_metadata=True, timeout=5) if repo_type == "model"
                else api.dataset_info(repo_id, files_metadata=True, timeout=5))
    except Exception:  # noqa: BLE001 - any hub failure only means "size unknown"
        return None
    files = {s.rfilename: s.size or 0 for s in info.siblings or []}
    weights = [f for f in files if f.endswith(".safetensors")] or \
              [f for f in files if f.endswith((".bin", ".pt"))][:1]
    small = [f for f in files if f.endswith((".json", ".model", ".txt", ".csv", ".parquet"))]
    return sum(files[f] for f in {*weights, *small}) or None


def _missing_fix(role: str, source: str, flag: str | None = None) -> str:
    flag = flag or FLAGS[role]
    env = f" or {ENV_VARS[role]}=FOLDER" if role in ENV_VARS else ""
    if role == "dataset":
        how = (f"download the DialogSum CSV files (dialogsum_train/validation/test.csv) on a connected "
               f"machine and start with {flag} FOLDER{env}")
    else:
        name = source.rsplit("/", 1)[-1]
        how = (f"on a connected machine run `hf download {source} --local-dir models/{name}`, then "
               f"start with {flag} models/{name}")
    # "models/flan-t5-base" reads as a hub id too: when "models/" is a folder here, the user meant a
    # folder, so say where we looked instead of only suggesting a download of a repo that may not exist.
    top = Path(source).parts[0] if "/" in source else None
    looked = (f"There is no folder {source} under {Path.cwd()} (relative folders are read from there). "
              if top and Path(top).is_dir() else "")
    return (f"{looked}It is not in the Hugging Face cache and the hub cannot be used (offline or "
            f"unreachable). Connect once (it is then cached), or {how}.")


def check_source(role: str, source: str, can_download: bool | None = None,
                 ask_size: bool = True) -> SourceCheck:
    """Where ``source`` (a folder or hub id) for ``role`` comes from.

    Args:
        role: ``base``, ``toxicity`` or ``dataset``.
        source: hub id or local folder.
        can_download: whether the hub may be used; default: not :func:`offline`.
        ask_size: ask the hub for the download size (only when ``can_download``).
    """
    from summarizer.data import is_hub_id

    source = str(source)
    can_download = (not offline()) if can_download is None else can_download
    if Path(source).expanduser().is_dir():
        return SourceCheck(role, source, LOCAL)
    if not is_hub_id(source):
        return SourceCheck(role, source, MISSING, fix=f"The folder does not exist: give an existing "
                                                      f"folder or a hub id with {FLAGS[role]}.")
    cached = _dataset_cached(source) if role == "dataset" else _model_cached(source)
    if cached:
        return SourceCheck(role, source, CACHED)
    if not can_download:
        return SourceCheck(role, source, MISSING, fix=_missing_fix(role, source))
    size = _download_size(source, "dataset" if role == "dataset" else "model") if ask_size else None
    return SourceCheck(role, source, DOWNLOAD, size_bytes=size)


def check_sources(base: str, toxicity: str, dataset: str, can_download: bool | None = None,
                  ask_size: bool = True) -> list[SourceCheck]:
    """:func:`check_source` for the base model, the toxicity model and the dataset, in that order."""
    return [check_source(role, src, can_download, ask_size)
            for role, src in (("base", base), ("toxicity", toxicity), ("dataset", dataset))]


def summary_markdown(checks: list[SourceCheck]) -> str:
    """A short Markdown note for the top of the page: empty when everything is local or cached."""
    pending = [c for c in checks if c.where in (DOWNLOAD, MISSING)]
    if not pending:
        return ""
    lines = []
    downloads = [c for c in pending if c.where == DOWNLOAD]
    if downloads:
        total = sum(c.size_bytes or 0 for c in downloads)
        size = f" (about {human_size(total)} in all)" if total else ""
        lines.append(f"**First use downloads{size}** from the Hugging Face hub; the first Summarize "
                     "or Compare waits for it (progress in the console), later starts use the cache.")
    lines += [f"* {c.text}" for c in pending]
    if any(c.where == MISSING for c in pending):
        lines.append(TINY_HINT)
    return "\n".join(lines)


def offline_refusal(what: str, source: str, flag: str) -> str:
    """The message for a hub id that offline mode cannot load (not in the cache): says so, with the
    download command, the flag (``flag``) and the tiny-model line of the start-up note."""
    return (f"The {what} {source} cannot be loaded offline (HF_HUB_OFFLINE=1: nothing is downloaded). "
            + _missing_fix("model", source, flag) + " " + TINY_HINT)


def explain_load_error(what: str, source: str, err: BaseException, flag: str) -> str:
    """The message for a failed load of ``source`` (``what``: e.g. "base model"): the error, plus
    how to get the files (naming ``flag``) when ``source`` is a hub id that could not be fetched
    (offline, unreachable, or not in the cache)."""
    from summarizer.data import is_hub_id

    text = f"Could not load the {what} from {source!r}: {err}"
    hub_failure = any(s in str(err) for s in ("couldn't connect", "offline", "cached files",
                                             "Couldn't reach", "LocalEntryNotFound"))
    if is_hub_id(str(source)) and not Path(str(source)).exists() and hub_failure:
        text += " " + _missing_fix("model", str(source), flag) + " " + TINY_HINT
    return text


def loading_note(what: str, source: str) -> str:
    """A progress line for the first load of ``source``: says when it is a first-use download
    (not a local folder and not in the cache), so a long wait is never silent."""
    from summarizer.data import is_hub_id

    source = str(source)
    if Path(source).expanduser().is_dir() or not is_hub_id(source) or _model_cached(source):
        return f"loading the {what} ({source})"
    if offline():
        return f"loading the {what} ({source}): not in the cache and offline"
    return (f"downloading the {what} {source} from the Hugging Face hub (first use only; "
            "download progress in the console)")
