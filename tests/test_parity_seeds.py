"""benchmarks/parity_ct2.py over several seeded tiny builds, and the bootstrap's small-N caveat
(README, Faster inference and Evaluation): the figures the README reports as ranges."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _parity_module():
    spec = importlib.util.spec_from_file_location("parity_ct2", ROOT / "benchmarks" / "parity_ct2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parity_reports_the_range_over_seeded_builds(capsys):
    parity = _parity_module()
    report = lambda share, diff: {"share": share, "diff": diff}  # noqa: E731
    parity._print_ranges({("int8", "greedy", "base"): [report(0.0, 3.5), report(0.4, 1.25), report(0.1, 2.0)],
                          ("float32", "beam", "lora"): [report(0.58, 1.5), report(0.9, -0.25), report(0.7, 0.5)]},
                         20, [0, 1, 2])
    out = capsys.readouterr().out
    assert "Range over 3 tiny builds (seeds 0, 1, 2), 20 dialogues each" in out
    assert "| int8 | greedy | base | 0%-40% | +1.25 to +3.50 |" in out
    assert "| float32 | beam | lora | 58%-90% | -0.25 to +1.50 |" in out


def test_parity_seeds_build_tiny_models_only():
    parity = _parity_module()
    with pytest.raises(SystemExit) as refused:
        parity.main(["--seeds", "0", "1", "--base-model", "google/flan-t5-base"])
    assert refused.value.code == 2


def test_bootstrap_interval_is_too_narrow_at_small_n_as_the_readme_says():
    """Nominal 95%: far lower on 2 or 3 dialogues, near it by 20 (calibration's model)."""
    from summarizer.prompt_lab.calibration import bootstrap_coverage

    assert bootstrap_coverage(1, 50) == 0  # one value: an interval of zero width
    assert bootstrap_coverage(2, 400) < 0.65
    assert bootstrap_coverage(3, 400) < 0.88
    assert bootstrap_coverage(20, 400) > 0.90
