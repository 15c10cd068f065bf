"""``posguard bench --quality`` end to end on small drops of both generators (figures, curve, tables)."""

from graph.settings import INSECURE_DEV_KEY
from posguard.bench_quality import REPORTING_RATES, curve_markdown, quality_markdown, run_quality


def test_quality_bench_measures_planted_and_clean_drops_of_both_generators(tmp_path):
    rows, curve = run_quality(INSECURE_DEV_KEY, seeds=(5,), txns=40_000, clean_txns=40_000, root=tmp_path)
    by = {(r["generator"], r["planted"]): r for r in rows}
    assert set(by) == {("standard", True), ("adversarial", True), ("standard", False), ("adversarial", False)}
    for generator in ("standard", "adversarial"):
        planted, clean = by[(generator, True)], by[(generator, False)]
        assert planted["cloned_planted"] > 0 and 0.0 <= planted["cloned_precision_at_k"] <= 1.0
        assert 0.0 <= planted["skimming_recall_top"] <= 1.0
        assert clean["cloned_planted"] == 0 and "skimming_recall_top" not in clean  # nothing planted to find
    assert 0.0 <= by[("adversarial", True)]["at_terminal_average_precision"] <= 1.0
    assert by[("adversarial", True)]["unreported_clones"] >= 0
    # the reporting-rate curve: one row per planted drop and rate, more reports at higher rates
    assert sorted({(c["generator"], c["rate"]) for c in curve}) == sorted(
        (g, r) for g in ("standard", "adversarial") for r in REPORTING_RATES)
    for g in ("standard", "adversarial"):
        reported = [c["reported"] for c in sorted((c for c in curve if c["generator"] == g), key=lambda c: c["rate"])]
        assert reported == sorted(reported) and reported[-1] > reported[0]
    table, curve_table = quality_markdown(rows), curve_markdown(curve)
    assert table.count("\n| standard |") + table.count("\n| adversarial |") == 4
    assert "| adversarial | 5% |" in curve_table or "| adversarial | 0.05 |" in curve_table
