"""The web load benchmark runs end to end on a short setting and gives sane figures (the figures
themselves are for the report: on a shared 2-core machine they are not asserted against the goal)."""

from __future__ import annotations

from appliance.bench.web import report, run_bench


def test_web_bench_short_run(images_dir, models_dir):
    result = run_bench(viewers=3, seconds=1.5, source=str(images_dir), throttle=True, device="cpu",
                       settle_s=0.5)
    text = report(result)
    print(text)
    assert result.backend == "cpu" and result.viewer_errors == 0
    assert result.idle.inference_fps > 0 and result.loaded.inference_fps > 0 and result.ratio > 0
    assert len(result.frames_per_viewer) == 3 and min(result.frames_per_viewer) > 0
    assert result.loaded.rss_mb > 0 and result.idle.cpu_percent > 0
    assert "ratio" in text and "frames per viewer" in text
