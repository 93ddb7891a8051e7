"""Blind copies keep the picture and drop everything else; the sandbox draws per provider, with a bias on demand."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from playground.blind import blind_copies, png_chunks
from playground.sandbox.core import SandboxState
from playground.sandbox.draw import EXIF_SOFTWARE, GRAIN, grain_sd, render

ORIENTATION = 0x0112


def jpeg_with_everything(size=(120, 80), color=(200, 40, 40)) -> bytes:
    """A JPEG that names its maker every way a file can: EXIF, a comment, an ICC profile, XMP."""
    exif = Image.Exif()
    exif[EXIF_SOFTWARE] = "SecretHost renderer"
    exif[0x010F] = "SecretHost"  # Make
    out = io.BytesIO()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description creator="SecretHost"/></x:xmpmeta>'
    Image.new("RGB", size, color).save(
        out, "JPEG", exif=exif, comment=b"made by SecretHost", icc_profile=profile, xmp=xmp, quality=95
    )
    return out.getvalue()


def png_with_text(size=(120, 80), color=(40, 200, 40), mode="RGB") -> bytes:
    info = PngInfo()
    info.add_text("Software", "SecretHost")
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_a_copy_has_no_metadata_at_all_and_the_same_pixels():
    original = jpeg_with_everything()
    assert original.count(b"SecretHost") >= 3, "the check below must be able to fail"
    (copy,) = blind_copies([original])
    assert b"SecretHost" not in copy and png_chunks(copy) == ["IHDR", "IDAT", "IEND"]
    with Image.open(io.BytesIO(copy)) as img, Image.open(io.BytesIO(original)) as src:
        assert img.info == {} and img.size == src.size
        assert img.getpixel((60, 40)) == src.convert("RGB").getpixel((60, 40))


def test_copies_of_different_sizes_and_formats_come_out_one_size_and_one_format():
    copies = blind_copies([jpeg_with_everything((1392, 752)), png_with_text((1024, 1024))])
    sizes = [Image.open(io.BytesIO(c)).size for c in copies]
    assert sizes == [(1024, 752), (1024, 752)]  # the smallest width and height: nothing is enlarged
    assert all(Image.open(io.BytesIO(c)).format == "PNG" for c in copies)


def test_orientation_is_applied_before_the_exif_goes():
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (0, 0, 255)).save(out, "JPEG", exif=exif)
    (copy,) = blind_copies([out.getvalue()])
    assert Image.open(io.BytesIO(copy)).size == (20, 40)


def test_transparency_is_flattened_on_white_for_every_host():
    (copy,) = blind_copies([png_with_text(color=(0, 0, 0, 0), mode="RGBA")])
    with Image.open(io.BytesIO(copy)) as img:
        assert img.mode == "RGB" and img.getpixel((5, 5)) == (255, 255, 255)


def test_identical_pictures_give_identical_copies_whatever_their_metadata():
    first = png_with_text()
    info = PngInfo()
    info.add_text("Software", "OtherHost")
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (40, 200, 40)).save(out, "PNG", pnginfo=info)
    second = out.getvalue()
    assert first != second
    a, b = blind_copies([first, second])
    assert a == b


# --- the sandbox's images ----------------------------------------------------------------------------


def test_the_sandbox_keeps_the_host_in_the_metadata_not_in_the_pixels():
    png = render("KIE AI", "flux-kontext-pro", "a fox", "1:1", "png", None)
    jpeg = render("KIE AI", "flux-kontext-pro", "a fox", "1:1", "jpeg", None)
    with Image.open(io.BytesIO(png)) as img:
        assert "KIE AI" in img.info["Source"] and "KIE AI" in img.getexif()[EXIF_SOFTWARE]
    with Image.open(io.BytesIO(jpeg)) as img:
        assert b"KIE AI" in img.info["comment"]


def test_two_hosts_draw_the_same_prompt_with_different_grain():
    a = render("KIE AI", "flux-kontext-pro", "a fox", "1:1", "png", None)
    b = render("APIXO", "flux-kontext-pro", "a fox", "1:1", "png", None)
    again = render("KIE AI", "flux-kontext-pro", "a fox", "1:1", "png", None)
    copies = blind_copies([a, b, again])
    assert copies[0] != copies[1] and copies[0] == copies[2]


def test_a_bias_makes_the_grain_coarser_or_finer():
    assert grain_sd(0.0) == GRAIN and grain_sd(-0.5) == 1.5 * GRAIN and grain_sd(1.0) == 0.0
    assert grain_sd(-5) == 2 * GRAIN  # clipped to [-1, 1]


def test_sandbox_bias_is_read_from_its_setting_and_checked():
    state = SandboxState()
    state.configure_bias("kie:-0.5, apixo:+0.25")
    assert state.bias == {"kie": -0.5, "apixo": 0.25}
    with pytest.raises(ValueError, match="provider:number"):
        state.configure_bias("kie=-0.5")
    with pytest.raises(ValueError, match="between -1 and 1"):
        state.set_bias("kie", 2)
