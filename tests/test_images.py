import numpy as np
import pytest
from PIL import Image

from ensemble.data.images import read_image, read_images
from ensemble.errors import EnsError


def save(path, image):
    image.save(path)
    return path


@pytest.mark.parametrize(
    "make, suffix",
    [
        (lambda: Image.new("L", (7, 5), 200), ".png"),
        (lambda: Image.new("RGB", (30, 12), (10, 20, 30)), ".jpg"),
        (lambda: Image.new("RGBA", (9, 9), (255, 0, 0, 255)), ".png"),
        (lambda: Image.new("P", (4, 4)), ".png"),
        (lambda: Image.fromarray(np.full((6, 6), 40000, dtype=np.uint16)), ".png"),
    ],
)
def test_every_mode_and_size_becomes_rgb_at_size(tmp_path, make, suffix):
    pixels = read_image(save(tmp_path / f"x{suffix}", make()), 16)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8


def test_sixteen_bit_keeps_brightness_and_alpha_lies_on_black(tmp_path):
    gray16 = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert read_image(save(tmp_path / "w.png", gray16), 4).min() == 255
    clear = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    assert read_image(save(tmp_path / "c.png", clear), 4).max() == 0


def test_unreadable_image_names_file_and_id(tmp_path):
    broken = tmp_path / "bad.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(EnsError, match=r"bad\.png: cannot read image for id 'b7'"):
        read_image(broken, 8, "b7")


def test_read_images_keeps_order(tmp_path):
    paths = [save(tmp_path / f"{value}.png", Image.new("L", (3, 3), value)) for value in (0, 100, 250)]
    stack = read_images(paths, ["a", "b", "c"], 4, jobs=2)
    assert stack.shape == (3, 4, 4, 3)
    assert stack[:, 0, 0, 0].tolist() == [0, 100, 250]


def gradient(low, high, dtype):
    return np.linspace(low, high, 64).reshape(8, 8).astype(dtype)


@pytest.mark.parametrize(
    "pixels",
    [
        gradient(0, 255, np.int32),  # 8-bit data in a 32-bit file: was black (divided by 257)
        gradient(0, 4095, np.int32),  # 12-bit medical data: was 16 grey levels
        gradient(1000, 60000, np.int32),  # 16-bit data
        gradient(0.0, 1.0, np.float32),
        gradient(-1.0, 1.0, np.float32),  # was clipped: the lower half black
        gradient(0.0, 4000.0, np.float32),  # reflectances: was white above 255
    ],
)
def test_wide_grayscale_is_stretched_from_its_own_range(tmp_path, pixels):
    image = Image.fromarray(pixels)
    assert image.mode in ("I", "F")
    read = read_image(save(tmp_path / "w.tif", image), 8)[..., 0]
    assert read.min() == 0 and read.max() == 255
    assert np.all(np.diff(read.ravel()) >= 0)  # order kept
    assert len(np.unique(read)) == 64  # every one of the 64 levels stays distinct


def test_wide_grayscale_without_a_range(tmp_path):
    constant = Image.fromarray(np.full((4, 4), 7, dtype=np.int32))
    assert read_image(save(tmp_path / "c.tif", constant), 4).max() == 0
    holes = np.array([[np.nan, 0.0], [0.5, np.inf]], dtype=np.float32)
    assert read_image(save(tmp_path / "n.tif", Image.fromarray(holes)), 2)[..., 0].tolist() == [[0, 0], [255, 0]]
