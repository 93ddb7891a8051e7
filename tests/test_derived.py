"""What an edit changed, against edits whose changed region is known; thumbnails."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from playground.derived import changes, thumbnail

GREY = (120, 130, 140)


def picture(path: Path, size: tuple[int, int], box: tuple[int, int, int, int] | None = None, **save: int) -> Path:
    """A grey picture with a stripe pattern (so resizing has edges to blur), and a red box if given."""
    img = Image.new("RGB", size, GREY)
    draw = ImageDraw.Draw(img)
    for x in range(0, size[0], size[0] // 10):
        draw.line((x, 0, x, size[1]), fill=(90, 100, 110), width=1)
    if box is not None:
        draw.rectangle(box, fill=(230, 20, 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **save)
    return path


def test_an_edit_that_paints_one_eighth_of_the_picture_changed_one_eighth(tmp_path):
    before = picture(tmp_path / "in.png", (400, 200))
    after = picture(tmp_path / "run" / "kie-flux-kontext-pro.png", (400, 200), box=(0, 0, 99, 99))  # 100x100 of 400x200
    found = changes(before, after)
    assert found is not None and found.share == pytest.approx(0.125, abs=0.005)
    with Image.open(found.map_path) as shown:
        assert shown.size == (400, 200)
        inside, outside = shown.getpixel((50, 50)), shown.getpixel((300, 150))
        assert sum(inside) > 2 * sum(outside), "the changed region stands out in the map"
    assert changes(before, after) == found, "a result compared once is not compared again"


def test_the_input_is_brought_to_the_results_size_and_jpeg_noise_is_not_a_change(tmp_path):
    before = picture(tmp_path / "in.png", (200, 100))  # the same picture at half the size
    after = picture(tmp_path / "run" / "r.jpg", (400, 200), box=(200, 0, 399, 199), quality=85)  # the right half
    found = changes(before, after)
    assert found is not None and found.share == pytest.approx(0.5, abs=0.02)
    untouched = picture(tmp_path / "run" / "same.jpg", (400, 200), quality=85)
    assert changes(before, untouched).share < 0.01


def test_an_unreadable_file_gives_no_changes_rather_than_an_error(tmp_path):
    before = picture(tmp_path / "in.png", (40, 20))
    broken = tmp_path / "r.png"
    broken.write_bytes(b"not an image")
    assert changes(before, broken) is None


def test_a_thumbnail_is_small_and_made_once(tmp_path):
    source = picture(tmp_path / "run" / "r.jpg", (1024, 512), quality=90)
    thumb = thumbnail(source)
    assert thumb is not None
    with Image.open(thumb) as small:
        assert max(small.size) == 160 and small.size[0] == 2 * small.size[1]
    made = thumb.stat().st_mtime_ns
    assert thumbnail(source) == thumb and thumb.stat().st_mtime_ns == made
