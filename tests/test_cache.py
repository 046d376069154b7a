"""The decoded-image cache: identical to a fresh decode, reused, refused after a file changes."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.data import cache
from ensemble.data.images import read_images


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for index in range(7):
        path = tmp_path / "images" / f"{index}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (9 + index, 12, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths, [str(index) for index in range(7)]


def test_the_cache_holds_exactly_what_a_fresh_decode_gives(tmp_path, pictures, monkeypatch):
    paths, ids = pictures
    monkeypatch.setattr(cache, "CHUNK_BYTES", 3 * 8 * 8 * 3)  # three images per chunk: 7 makes 3 chunks
    images, was_cached = cache.cached_images(tmp_path, paths, ids, 8)
    fresh = read_images(paths, ids, 8)
    assert not was_cached and images.shape == fresh.shape == (7, 8, 8, 3)
    np.testing.assert_array_equal(np.asarray(images), fresh)
    rows = np.array([6, 0, 3, 4, 5, 1])  # any order, runs of consecutive rows included
    np.testing.assert_array_equal(images[rows], fresh[rows])
    np.testing.assert_array_equal(images[2:5], fresh[2:5])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(images))[rows], fresh[rows])
    assert [path.name for path in (tmp_path / "cache").iterdir() if path.suffix == ".tmp"] == []


def test_a_cache_is_reused_and_refused_once_an_image_changes(tmp_path, pictures):
    paths, ids = pictures
    first, _ = cache.cached_images(tmp_path, paths, ids, 8)
    written = first.path.stat().st_mtime_ns
    again, was_cached = cache.cached_images(tmp_path, paths, ids, 8)
    assert was_cached and again.path == first.path and again.path.stat().st_mtime_ns == written

    Image.new("RGB", (5, 5), (255, 0, 0)).save(paths[3])  # same name, other pixels
    changed, was_cached = cache.cached_images(tmp_path, paths, ids, 8)
    assert not was_cached and changed.path != first.path
    assert changed[[3]][0, 0, 0].tolist() == [255, 0, 0]
    np.testing.assert_array_equal(np.asarray(changed), read_images(paths, ids, 8))

    # Another size is another cache; a file touched without changing its bytes is not.
    assert not cache.cached_images(tmp_path, paths, ids, 4)[1]
    os.utime(paths[0], ns=(1, 1))
    assert cache.cached_images(tmp_path, paths, ids, 8)[1]


def test_a_same_size_image_replaced_with_its_time_kept_is_not_read_from_the_cache(tmp_path, pictures):
    # cp -p of another picture of the same byte size: a key of paths, sizes and times misses it.
    paths, ids = pictures
    # Uncompressed PNGs: the byte size depends on the image's shape alone.
    Image.new("RGB", (12, 11), (0, 0, 255)).save(paths[2], compress_level=0)
    first, _ = cache.cached_images(tmp_path, paths, ids, 8)
    stat = paths[2].stat()
    Image.new("RGB", (12, 11), (0, 255, 0)).save(paths[2], compress_level=0)
    os.utime(paths[2], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert paths[2].stat().st_size == stat.st_size and paths[2].stat().st_mtime_ns == stat.st_mtime_ns
    again, was_cached = cache.cached_images(tmp_path, paths, ids, 8)
    assert not was_cached and again.path != first.path
    assert again[[2]][0, 0, 0].tolist() == [0, 255, 0]


def test_a_copied_workspace_keeps_its_cache_key(tmp_path, pictures):
    import shutil

    from ensemble.data.content import content_key

    paths, ids = pictures
    copy = tmp_path / "elsewhere"
    shutil.copytree(paths[0].parent, copy / "images")  # new times, new absolute paths
    copied = [copy / "images" / path.name for path in paths]
    assert content_key(copied, copy / "images") == content_key(paths, paths[0].parent)
    first, _ = cache.cached_images(tmp_path, paths, ids, 8)
    shutil.copytree(tmp_path / "cache", copy / "cache")
    again, was_cached = cache.cached_images(copy, copied, ids, 8)
    assert was_cached and again.path.name == first.path.name


def test_a_damaged_cache_file_is_decoded_again(tmp_path, pictures):
    paths, ids = pictures
    images, _ = cache.cached_images(tmp_path, paths, ids, 8)
    with open(images.path, "r+b") as stream:
        stream.truncate(images.offset + 10)
    again, was_cached = cache.cached_images(tmp_path, paths, ids, 8)
    assert not was_cached
    np.testing.assert_array_equal(np.asarray(again), read_images(paths, ids, 8))


def test_ens_cache_lists_and_clears(trained_copy):
    runner = CliRunner()
    listed = runner.invoke(app, ["cache", "-w", str(trained_copy)])
    assert listed.exit_code == 0 and "36 images at 16px" in listed.stdout and "10 images at 16px" in listed.stdout
    cleared = runner.invoke(app, ["cache", "--clear", "-w", str(trained_copy)])
    assert cleared.exit_code == 0 and "removed 2 cached image files" in cleared.stdout
    assert list((trained_copy / "cache").iterdir()) == []
    assert "empty" in runner.invoke(app, ["cache", "-w", str(trained_copy)]).stdout


def test_a_cache_in_use_is_not_cleared(tmp_path, pictures):
    """Issue 16, 9: `ens cache --clear` during train-folds lost the fold (FileNotFoundError).
    A run holds the cache it reads, in its own process and in its workers; clear refuses it."""
    paths, ids = pictures
    images, _ = cache.cached_images(tmp_path, paths, ids, 8)
    (tmp_path / "ens.toml").write_text("")
    result = CliRunner().invoke(app, ["cache", "--clear", "-w", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr.strip().splitlines() == [f"error: {images.path}: in use by a running train-folds or predict; nothing was deleted: clear the cache once it ends"]
    assert sorted(path.suffix for path in (tmp_path / "cache").iterdir()) == [".json", ".npy"]
    worker_copy = pickle.loads(pickle.dumps(images))  # as a fold job's process gets it
    del images
    np.testing.assert_array_equal(worker_copy[[0, 6]], read_images(paths, ids, 8)[[0, 6]])
    with pytest.raises(cache.EnsError, match="in use"):  # held by the worker now
        cache.clear_cache(tmp_path)
    del worker_copy
    assert cache.clear_cache(tmp_path)[0] == 1
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_build_in_progress_is_not_cleared_but_a_killed_builds_temporary_is(tmp_path, pictures, monkeypatch):
    paths, ids = pictures
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / ".images-8px-7-dead.npy.x.tmp").write_bytes(b"left by a killed build")
    assert cache.clear_cache(tmp_path) == (0, 22)

    def clear_while_building(*args):
        with pytest.raises(cache.EnsError, match=r"\.tmp: in use"):
            cache.clear_cache(tmp_path)
        return read_images(*args)

    monkeypatch.setattr(cache, "read_images", clear_while_building)
    images, _ = cache.cached_images(tmp_path, paths, ids, 8)
    np.testing.assert_array_equal(np.asarray(images), read_images(paths, ids, 8))


def test_a_cache_cleared_between_its_header_and_its_hold_is_decoded_again(tmp_path, pictures, monkeypatch):
    paths, ids = pictures
    images, _ = cache.cached_images(tmp_path, paths, ids, 8)
    stale = cache.CachedImages(images.path)
    del images
    cache.clear_cache(tmp_path)
    with pytest.raises(FileNotFoundError):
        stale.hold()
    opened = cache.CachedImages

    def cleared_after_the_header(path):
        images = opened(path)
        cache.clear_cache(tmp_path)
        return images

    cache.cached_images(tmp_path, paths, ids, 8)
    monkeypatch.setattr(cache, "CachedImages", cleared_after_the_header)
    with pytest.raises(cache.EnsError, match="deleted as soon as it was written"):
        cache.cached_images(tmp_path, paths, ids, 8)


@pytest.mark.parametrize("side_file", ["{", "[1, 2]", ""])
def test_a_damaged_side_file_is_listed_as_damaged_and_never_fatal(tmp_path, pictures, side_file):
    """Issue 16, 12: cache/images-*.json holding `{` was a JSONDecodeError from `ens cache`."""
    paths, ids = pictures
    images, _ = cache.cached_images(tmp_path, paths, ids, 8)
    images.path.with_suffix(".json").write_text(side_file)
    (tmp_path / "ens.toml").write_text("")
    listed = CliRunner().invoke(app, ["cache", "-w", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "7 images at 8px" in listed.stdout and f"damaged: {images.path.with_suffix('.json').name}" in listed.stdout
    again, was_cached = cache.cached_images(tmp_path, paths, ids, 8)  # training does not need it
    assert was_cached and again.path == images.path
    del images, again
    assert cache.clear_cache(tmp_path)[0] == 1


def test_a_damaged_cache_file_is_listed_as_damaged(tmp_path, pictures):
    paths, ids = pictures
    images, _ = cache.cached_images(tmp_path, paths, ids, 8)
    images.path.write_bytes(b"\x93NUMPY")
    [entry] = cache.list_cache(tmp_path)
    assert entry.n_images == 0 and "decoded again when needed" in entry.damaged
