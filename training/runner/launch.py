"""The child's command line: ``python -m <method module> --config <run>/config.json``, or through
``accelerate launch`` for several processes or an accelerate config file (from
``accelerate config``: multi-GPU, multi-node, DeepSpeed ZeRO, FSDP).

The method comes from the registry's allow-list and the paths from the run folder; an accelerate
config file is user input, so it is checked here (and again at launch) as an untrusted path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from summarizer.text import whole_number
from training import registry
from training.runner.settings import local_path

MAX_PROCESSES = max(2, os.cpu_count() or 1)
MAX_ACCELERATE_CONFIG_BYTES = 100_000  # `accelerate config` writes under 1 KB


def check_processes(num_processes) -> int:
    """``num_processes`` as an int in 1..:data:`MAX_PROCESSES`.

    Raises:
        ValueError: anything else, naming ``num_processes`` and its range.
    """
    return whole_number(num_processes, "num_processes", 1, MAX_PROCESSES)


def check_method_processes(method: str, num_processes: int, accelerate_config: str | None) -> None:
    """Refuse several processes (or an accelerate config) for a single-process method.

    Raises:
        ValueError: naming ``num_processes`` or ``accelerate_config``, the method and why.
    """
    spec = registry.spec(method)
    if spec.max_processes is None:
        return
    if num_processes > spec.max_processes:
        raise ValueError(f"num_processes must be 1 for {spec.title} runs, got {num_processes}: "
                         f"{spec.single_process_reason}")
    if accelerate_config:
        raise ValueError(f"accelerate_config must be empty for {spec.title} runs (it runs in one "
                         f"process): {spec.single_process_reason}")


def check_accelerate_config(path, allowed_roots: list[Path], allowed_files: list[Path]) -> str | None:
    """``path`` resolved, if it is an accelerate config file we may hand to ``accelerate launch``;
    None for an empty value.

    Allowed: a regular file of at most 100 KB holding a YAML or JSON mapping, inside one of
    ``allowed_roots`` (the runs folder) after resolving links, or one of
    ``allowed_files`` (given on the app's command line).

    Raises:
        ValueError: anything else; the message names ``accelerate_config`` and what is allowed.
    """
    if path is None or (isinstance(path, str) and not path.strip()):
        return None
    if not isinstance(path, str) or len(path) > 1000 or "\x00" in path:
        raise ValueError(f"accelerate_config must be a file path (text), got {repr(path)[:60]}.")
    real = local_path(path, "accelerate_config")
    inside = any(real.is_relative_to(root) for root in _resolved(allowed_roots))
    if not inside and real not in _resolved(allowed_files):
        roots = " or ".join(str(r) for r in allowed_roots)
        raise ValueError(f"accelerate_config {path!r} is outside the allowed places: put the file "
                         f"(from `accelerate config`) under {roots}, or name it on the app's command line.")
    if not real.is_file():
        raise ValueError(f"accelerate_config {path!r} is not a file: give the YAML file written by "
                         "`accelerate config` (e.g. default_config.yaml).")
    if real.stat().st_size > MAX_ACCELERATE_CONFIG_BYTES:
        raise ValueError(f"accelerate_config {path!r} is over {MAX_ACCELERATE_CONFIG_BYTES:,} bytes: "
                         "not an accelerate config file.")
    _parse_accelerate_config(path, real)
    return str(real)


def _resolved(paths: list[Path]) -> set[Path]:
    """``paths`` resolved; one that cannot be (a link loop, no such user) allows nothing."""
    out = set()
    for p in paths:
        try:
            out.add(local_path(str(p), "accelerate_config"))
        except ValueError:
            continue
    return out


def _parse_accelerate_config(shown: str, real: Path) -> dict:
    """The mapping in an accelerate config file (YAML, or JSON by its suffix)."""
    import yaml

    try:
        text = real.read_text()
        values = json.loads(text) if real.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"accelerate_config {shown!r} does not parse as YAML/JSON: "
                         f"{' '.join(str(err).split())[:200]}") from None
    if not isinstance(values, dict):
        raise ValueError(f"accelerate_config {shown!r} must hold a mapping of accelerate settings "
                         "(such as distributed_type, num_processes), as `accelerate config` writes.")
    return values


def command(python: str, method: str, run_dir, num_processes: int = 1,
            accelerate_config: str | None = None) -> list[str]:
    """The child's argument list for ``method`` (allow-listed) and ``run_dir``.

    Raises:
        ValueError: unknown method or a bad process count.
    """
    module = registry.spec(method).module
    num_processes = check_processes(num_processes)
    config = str(Path(run_dir) / "config.json")
    if accelerate_config:  # the file sets processes, machines, DeepSpeed/FSDP, precision
        extra = ["--num_processes", str(num_processes)] if num_processes > 1 else []
        return [python, "-m", "accelerate.commands.launch", "--config_file", accelerate_config, *extra,
                "-m", module, "--config", config]
    if num_processes <= 1:
        return [python, "-m", module, "--config", config]
    # `--multi_gpu` is accelerate's torchrun launcher and also what starts N processes on a
    # CPU-only machine (they use gloo, see training.seq2seq); accelerate 1.15's `--cpu`
    # with --num_processes > 1 starts a single process unless mpirun is configured.
    return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "-m", module, "--config", config]


def checked_config(run, method: str, status: dict) -> int:
    """Validate a queued run's files before launch; returns its process count.

    Raises:
        ValueError: status and run id disagree, or config.json is not a valid config of this
            run (the child would refuse it anyway; this keeps planted files from running).
    """
    from dataclasses import fields

    from training.runner.settings import read_small_json

    if status.get("method") != method:
        raise ValueError(f"status.json says method {status.get('method')!r} but the run id says {method!r}")
    num_processes = check_processes(status.get("num_processes", 1))
    values = read_small_json(run.config_file)
    if not isinstance(values, dict):
        raise ValueError("config.json is missing or not a JSON object")
    if values.get("run_dir") != str(run.path):
        raise ValueError("config.json names another run folder")
    cls = registry.spec(method).config
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"config.json has unknown settings: {', '.join(sorted(map(str, unknown))[:5])}")
    try:
        cls(**values)
    except (TypeError, RuntimeError, RecursionError, OSError) as err:
        # A planted value must fail this run, never the tick: that would leave it queued forever.
        raise ValueError(f"config.json is not a valid {method} config ({type(err).__name__}: {err})") from err
    return num_processes


def reattachable(pid, created, run_dir: Path, marker_env: str) -> bool:
    """True if process ``pid`` is alive, was created at ``created`` (±1 s) and carries our
    marker: ``marker_env`` naming ``run_dir`` and the run's config path on its command line (so
    after an app restart only a run's own process is ever signalled)."""
    import psutil

    if not pid or created is None:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE or abs(p.create_time() - created) >= 1.0:
            return False
        return (p.environ().get(marker_env) == str(run_dir)
                and str(Path(run_dir) / "config.json") in p.cmdline())
    except (psutil.Error, OSError):
        return False
