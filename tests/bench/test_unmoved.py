"""``python -m avatar.bench unmoved``: a portrait at its own landmarks, and what the engine alters."""

from avatar.bench import unmoved
from avatar.media.image import save_image


def test_the_unmoved_benchmark_reports_each_portrait(portrait, tmp_path, capsys):
    save_image(tmp_path / "portrait_01.png", portrait)
    assert unmoved.main(["--eval", str(tmp_path), "--size", "256", "--out", str(tmp_path / "out")]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| portrait_01.png")]
    assert len(rows) == 1
    mean = float(rows[0].split("|")[2])
    assert mean < 3.0  # the engine leaves an unmoved portrait (almost) as it is
    assert (tmp_path / "out" / "unmoved-portrait_01.png").exists()


def test_an_empty_folder_says_so(tmp_path, capsys):
    assert unmoved.main(["--eval", str(tmp_path)]) == 1
    assert "no portrait" in capsys.readouterr().out
