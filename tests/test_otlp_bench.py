"""`make bench`'s receiver part (bench/otlp.py) on a small load: every span sent by the real
exporter is stored, the figures are reported, the receiver exits cleanly."""

from __future__ import annotations

from bench import otlp


def test_the_receiver_bench_stores_every_span() -> None:
    result = otlp.run(spans=4 * otlp.BATCH, threads=2)
    assert result["spans_stored"] == result["spans"] == 4 * otlp.BATCH
    assert result["batches_answered_ok"] == result["batches"] == 4
    assert result["spans_per_second"] > 0 and result["receiver_exit_code"] == 0
    assert result["receiver_rss_mb"]["peak"] > 0
