"""A file dropped into the Edit tab is checked by its bytes: each bad kind gets its own sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from playground.ui.uploads import UploadProblem, check_upload
from tests.ui.badfiles import huge_png, png

BAD_FILES = {
    "notes.png": (b"hello, this is not a picture\n", "notes.png is a text file, not an image (its name ends in .png"),
    "empty.png": (b"", "empty.png is empty (0 bytes)"),
    "cut.png": (png()[:-40], "cut.png is a PNG file that is cut short or damaged"),
    "huge.png": (huge_png(), "huge.png is 20000×20000 pixels (400 megapixels)"),
    "random.png": (bytes(range(256)) * 4, "random.png is not an image file"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_gets_one_sentence_that_says_what_would_work(tmp_path, name):
    content, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadProblem) as refused:
        check_upload(path)
    sentence = str(refused.value)
    assert sentence.startswith(expected), sentence
    assert "JPEG, PNG or WebP" in sentence or "scale it down" in sentence or "again" in sentence
    assert sentence.count(". ") == 0 and "\n" not in sentence, "one sentence"


def test_a_good_image_passes_and_is_described(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png((800, 600)))
    upload = check_upload(path)
    assert (upload.format, upload.width, upload.height) == ("PNG", 800, 600)
    assert upload.describe().startswith("photo.png: 800×600 PNG, ")


def test_a_gif_is_an_image_but_not_one_every_provider_takes(tmp_path):
    path = tmp_path / "anim.gif"
    Image.new("RGB", (10, 10)).save(path, format="GIF")
    with pytest.raises(UploadProblem, match="anim.gif is a GIF image"):
        check_upload(Path(path))
