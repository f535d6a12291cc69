"""How long a run will take on this machine: fixed costs plus steps plus validation, calibrated
from finished runs when there are some.

A run's wall time = fixed (process start-up and imports, model and data loading)
+ training steps (:func:`estimate_seconds`: tokens × parameters × the method's cost factor, a
measured CPU figure)
+ validation passes (``val_size`` dialogues, forward only, every ``eval_steps`` and at the end).
Without finished runs the figure is the rough CPU one below. With finished runs of the same
method (state completed, with launched/finished times), ``seconds = fixed + k × variable`` is
fitted to them by least squares (one run: fixed from its measured start-up time), so machine
speed, load and architecture are measured instead of assumed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from training import registry
from training.runner.settings import local_path, read_small_json

# Measured figure (the project brief): a flan-t5-small (77M parameters) full fine-tuning step with
# batch 8, 512 source / 128 target tokens takes about 10 s on 2 CPU threads; flan-t5-base
# (248M) takes 3-4x that, i.e. cost grows about linearly with parameters.
REFERENCE_STEP_S = 10.0
REFERENCE_TOKENS = 8 * (512 + 128)
REFERENCE_PARAMS = 77e6
REFERENCE_THREADS = 2
KNOWN_PARAMS = {"flan-t5-small": 77e6, "flan-t5-base": 248e6, "flan-t5-large": 783e6,
                "t5-small": 60e6, "t5-base": 223e6, "bart-base": 140e6, "bart-large": 406e6}

# Measured here (2 busy CPU threads): `import training.lora, transformers, peft, datasets` and
# the trainer take about 15 s; loading DialogSum rows and tokenizing a few thousand about 3 s;
# reading flan-t5-base's 248M parameters from safetensors about 4 s.
STARTUP_S = 15.0
DATA_S = 3.0
LOAD_S_PER_PARAM = 4.0 / 248e6
# A validation example is a forward pass only: about a third of a training example's cost
# (forward + backward ≈ 3 forwards; Kaplan et al., 2020, §2.1).
EVAL_FRACTION = 1 / 3
MAX_CALIBRATION_RUNS = 20


@dataclass(frozen=True)
class Estimate:
    """A run's expected wall time.

    Attributes:
        seconds: total seconds (fixed + variable).
        fixed_s: start-up, imports, model and data loading.
        variable_s: training steps and validation passes.
        basis: how it was obtained ("calibrated from N finished lora runs ..." or "rough CPU figure").
        calibrated_runs: number of finished runs used (0 = the rough figure).
    """

    seconds: float
    fixed_s: float
    variable_s: float
    basis: str
    calibrated_runs: int = 0


def parameter_count(base_model: str) -> float:
    """Parameters of ``base_model``: counted from a local config (no weights read; cached per
    version of that config), else a table of known hub models, else flan-t5-base's."""
    from summarizer.inference.meta_model import config_parameters

    try:
        path = local_path(str(base_model), "base_model")
        if (path / "config.json").is_file():
            return float(config_parameters(str(path)))
    except (OSError, ValueError, KeyError):
        pass  # not a usable local folder (submit says why): count it like a hub id
    name = str(base_model).rsplit("/", 1)[-1].lower()
    return KNOWN_PARAMS.get(name, KNOWN_PARAMS["flan-t5-base"])


def estimate_seconds(method: str, base_model: str, steps: int, batch_size: int,
                     source_tokens: int = 512, target_tokens: int = 128,
                     threads: int | None = None, settings: dict | None = None) -> float:
    """Rough wall-clock seconds of the training steps of a run on CPU, from the figure above.

    Cost per step = reference step × (tokens / reference tokens) × (parameters / 77M)
    × the method's ``cost_factor(settings)`` × (2 / threads); PPO's factor counts its
    generation and forward passes (``training/ppo.py``). An upper-bound guide (token counts
    are the maxima), not a promise.

    Raises:
        ValueError: unknown method.
    """
    import torch

    threads = threads or torch.get_num_threads()
    per_token = REFERENCE_STEP_S / REFERENCE_TOKENS * parameter_count(base_model) / REFERENCE_PARAMS
    tokens = batch_size * (source_tokens + target_tokens)
    factor = registry.spec(method).cost_factor(settings or {})
    return steps * tokens * per_token * factor * REFERENCE_THREADS / max(1, threads)


# Above this many seconds the form warns before Start (a CPU run of the default size takes hours).
LONG_RUN_S = 15 * 60


def measured_remaining(status: dict, now: float | None = None) -> tuple[float, float] | None:
    """(seconds per step, seconds left) measured on this run: the time from its first recorded
    step (``first_step_at``, after start-up and loading) to the latest (``step_at``) over the steps
    between, times the steps still to go. None before two steps were recorded in this attempt.
    ``now`` (default: the clock) counts the time since the latest step as spent on the next one."""
    first, first_at = status.get("first_step"), status.get("first_step_at")
    step, step_at, total = status.get("step"), status.get("step_at"), status.get("total_steps")
    if not all(isinstance(v, (int, float)) for v in (first, first_at, step, step_at, total)) or step <= first:
        return None
    per_step = (step_at - first_at) / (step - first)
    spent = max(0.0, (time.time() if now is None else now) - step_at)
    return per_step, max(0.0, (total - step) * per_step - spent)


def _get(values: dict, cls, name: str):
    value = values.get(name)
    return value if value is not None else cls.__dataclass_fields__[name].default


def rough_parts(method: str, values: dict) -> tuple[float, float]:
    """(fixed seconds, variable seconds) of the rough CPU figure for these settings.

    Raises:
        ValueError, TypeError: a setting is not a number.
    """
    spec = registry.spec(method)
    cls = spec.config
    get = lambda name: _get(values, cls, name)  # noqa: E731
    base = str(get("base_model"))
    steps, batch = int(get("max_steps")), int(get("batch_size"))
    source, target = int(get("max_source_tokens")), int(get(spec.target_tokens_field))
    fixed = STARTUP_S + DATA_S + LOAD_S_PER_PARAM * parameter_count(base)
    train = estimate_seconds(method, base, steps, batch, source, target, settings=values)
    per_example = train / max(1, steps * batch)
    if "toxicity_samples" in cls.__dataclass_fields__:  # measured on a sample before and after
        return fixed, train + 2 * int(get("toxicity_samples")) * per_example
    if "eval_steps" not in cls.__dataclass_fields__:
        return fixed, train
    val = int(get("val_size"))
    evals = steps // max(1, int(get("eval_steps"))) + 1 if val else 0  # + the final evaluation
    return fixed, train + evals * val * per_example * EVAL_FRACTION


def estimate(method: str, values: dict, finished: list[tuple[dict, dict]] = ()) -> Estimate:
    """The expected wall time of a ``method`` run with ``values``.

    Args:
        finished: (status, config) of finished runs on this machine; completed runs of ``method``
            with ``launched`` and ``finished`` times calibrate the figure (newest 20).

    Raises:
        ValueError, TypeError: a setting is not a number.
    """
    fixed, variable = rough_parts(method, values)
    samples = _calibration_samples(method, finished)
    if not samples:
        return Estimate(fixed + variable, fixed, variable, "rough CPU figure (no finished "
                        f"{method} run on this machine to calibrate from yet)")
    a, k = _fit(samples)
    n = len(samples)
    return Estimate(a + k * variable, a, k * variable,
                    f"calibrated from {n} finished {method} run{'s' if n > 1 else ''} on this machine", n)


def _calibration_samples(method: str, finished) -> list[tuple[float, float, float]]:
    """(measured seconds, measured start-up seconds or rough fixed, rough variable seconds)."""
    out = []
    for status, config in finished:
        if status.get("method") != method or status.get("state") != "completed" or not isinstance(config, dict):
            continue
        launched, done = status.get("launched"), status.get("finished")
        if not (isinstance(launched, (int, float)) and isinstance(done, (int, float)) and done > launched):
            continue
        try:
            fixed, variable = rough_parts(method, config)
        except (ValueError, TypeError):
            continue
        started = status.get("started")
        startup = started - launched if isinstance(started, (int, float)) and launched < started < done else None
        out.append((done - launched, fixed if startup is None else startup + DATA_S, variable))
        if len(out) >= MAX_CALIBRATION_RUNS:
            break
    return out


def _fit(samples: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(fixed seconds, scale of the variable part) fitted to (measured, fixed guess, variable)."""
    measured = [s[0] for s in samples]
    variables = [s[2] for s in samples]
    mean_fixed = sum(s[1] for s in samples) / len(samples)
    if len(samples) >= 2 and max(variables) > 1.01 * min(variables):
        n = len(samples)
        mx, my = sum(variables) / n, sum(measured) / n
        k = sum((x - mx) * (y - my) for x, y in zip(variables, measured)) / sum((x - mx) ** 2 for x in variables)
        a = my - k * mx
        if k > 0 and a >= 0:
            return a, k
    # One run, equal sizes, or a fit with a negative part: fixed from the measured start-up.
    a = min(mean_fixed, min(measured))
    k = sum(max(0.0, y - a) for y in measured) / max(1e-9, sum(variables))
    return a, k


def finished_for_calibration(runs: list[dict], cache: dict | None = None) -> list[tuple[dict, dict]]:
    """(status, config.json) of completed runs in ``runs`` (checked statuses from the job runner),
    newest first; configs are read once per run (``cache``: run id -> config)."""
    cache = {} if cache is None else cache
    out = []
    for status in runs:
        if status.get("state") != "completed" or not status.get("run_dir"):
            continue
        run_id = status["run_id"]
        if run_id not in cache:
            cache[run_id] = read_small_json(Path(status["run_dir"]) / "config.json")
        out.append((status, cache[run_id]))
        if len(out) >= 3 * MAX_CALIBRATION_RUNS:
            break
    return out
