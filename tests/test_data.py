"""reid/data.py: the transform, path forms, validation errors, the cache and the datasets."""
from __future__ import annotations

import copy

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_csv, write_jpeg
from reid.data import (UNKNOWN_GT, DataError, IDLossDataset, RetrievalDataset, TripletDataset,
                       count_possible_triplets, read_csv, retrieval_loader)
from reid.images import (CACHE_DTYPE, IMAGENET_MEAN, IMAGENET_STD, ImageDecodeError, image_shape, image_transform,
                         load_image, person_transform, reid_transform, to_rgb)
from reid.layout import DataInfo, DataLayoutError, find_data_root

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def plain_reference(img: Image.Image) -> torch.Tensor:
    """The transform by hand with PIL: resize the longer side to 128 (float, per channel), normalise, centre-pad."""
    w, h = img.size
    scale = 128 / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    chans = [np.asarray(Image.fromarray(np.asarray(img)[..., c].astype(np.float32) / 255, mode="F")
                        .resize((nw, nh), Image.BILINEAR)) for c in range(3)]
    x = (torch.from_numpy(np.stack(chans)) - MEAN) / STD
    out = torch.zeros(3, 128, 128)
    top, left = (128 - nh) // 2, (128 - nw) // 2
    out[:, top:top + nh, left:left + nw] = x
    return out


def test_transform_market_size_is_exact():
    # A 64×128 crop needs no resize: the middle 64 columns are (x/255 - mean)/std, 32 zero columns each side.
    arr = np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)
    out = reid_transform()(Image.fromarray(arr))
    assert out.shape == (3, 128, 128) and out.dtype == torch.float32
    expected = (torch.from_numpy(arr).permute(2, 0, 1).float() / 255 - MEAN) / STD
    torch.testing.assert_close(out[:, :, 32:96], expected, atol=1e-6, rtol=0)
    assert torch.count_nonzero(out[:, :, :32]) == 0 and torch.count_nonzero(out[:, :, 96:]) == 0


@pytest.mark.parametrize("size", [(40, 100), (100, 40), (300, 200), (128, 128)])
def test_transform_matches_plain_pil_reference(size):
    arr = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(arr).resize(size, Image.NEAREST).filter(__import__("PIL.ImageFilter").ImageFilter.SMOOTH))
    img = Image.fromarray(arr)
    out, ref = reid_transform()(img), plain_reference(img)
    assert out.shape == (3, 128, 128)
    # Same padded region (exactly zero) and, inside, the same pixels up to interpolation rounding.
    torch.testing.assert_close((out == 0).all(0), (ref == 0).all(0))
    assert (out - ref).abs().mean() < 0.02


def test_transform_aspect_and_padding_40x100():
    # 40 wide × 100 high → 51 × 128 (40·1.28 = 51.2); pad 38 left, 39 right.
    img = Image.new("RGB", (40, 100), (250, 10, 10))
    out = reid_transform()(img)
    content = (out != 0).any(0)
    cols = torch.nonzero(content.any(0)).flatten()
    assert cols.min() == 38 and cols.max() == 38 + 51 - 1
    assert content.any(1).all()                      # full height used


# ------------------------------------------------------------------ the person at their own shape
def plain_person_reference(img: Image.Image, h: int = 128, w: int = 64) -> torch.Tensor:
    """The person transform by hand with PIL: resize to exactly w × h (float, per channel), normalise."""
    chans = [np.asarray(Image.fromarray(np.asarray(img)[..., c].astype(np.float32) / 255, mode="F")
                        .resize((w, h), Image.BILINEAR)) for c in range(3)]
    return (torch.from_numpy(np.stack(chans)) - MEAN) / STD


def test_person_transform_keeps_a_1_to_2_crop_exactly_and_unpadded():
    # A 64×128 crop is already 128×64: every pixel is (x/255 - mean)/std, and there is no padding.
    arr = np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)
    out = person_transform((128, 64))(Image.fromarray(arr))
    assert out.shape == (3, 128, 64) and out.dtype == torch.float32
    expected = (torch.from_numpy(arr).permute(2, 0, 1).float() / 255 - MEAN) / STD
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(40, 100), (100, 40), (300, 200), (128, 128), (64, 128)])
def test_person_transform_stretches_any_crop_to_the_shape_without_padding(size):
    arr = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(arr).resize(size, Image.NEAREST).filter(__import__("PIL.ImageFilter").ImageFilter.SMOOTH))
    img = Image.fromarray(arr)
    out = person_transform((128, 64))(img)
    assert out.shape == (3, 128, 64)
    assert not (out == 0).all(0).any()                   # no padding pixel (all three channels 0)
    assert (out - plain_person_reference(img)).abs().mean() < 0.02


def test_person_transform_of_a_square_fills_the_frame_with_its_colour():
    # A 100×100 single-colour crop becomes 128×64 of that colour: stretched, not padded.
    out = person_transform((128, 64))(Image.new("RGB", (100, 100), (250, 10, 10)))
    colour = (torch.tensor([250, 10, 10]).view(3, 1, 1) / 255 - MEAN) / STD
    torch.testing.assert_close(out, colour.expand(3, 128, 64), atol=1e-5, rtol=0)


def test_image_size_names_the_transform_and_the_shape():
    img = Image.new("RGB", (64, 128), (10, 200, 30))
    assert image_shape(128) == (128, 128) and image_shape((128, 64)) == (128, 64)
    assert torch.equal(image_transform(128)(img), reid_transform()(img))              # C2, padded
    assert torch.equal(image_transform((128, 64))(img), person_transform((128, 64))(img))
    assert image_transform((256, 128))(img).shape == (3, 256, 128)
    for bad in (0, -1, (128,), (128, 0), (128, 64, 3), 128.0, True, "128"):
        with pytest.raises(ValueError, match="image_size: expected a positive int"):
            image_shape(bad)


def test_datasets_at_128x64_cache_the_person_shape(tiny_layout):
    shape = (128, 64)
    ids = IDLossDataset(tiny_layout / "train_idloss.csv", image_size=shape)
    assert ids.cache.images.shape == (6, 3, 128, 64) and ids.cache.image_size == shape
    assert ids.cache.nbytes / len(ids) == 3 * 128 * 64 * 2                  # 49,152 bytes, half of C2's
    assert ids.cache.batch(torch.tensor([5, 0])).shape == (2, 3, 128, 64)
    trip = TripletDataset(tiny_layout / "train_random_triplet.csv", image_size=shape)
    assert trip.cache.images.shape == (6, 3, 128, 64)
    assert all(x.shape == (3, 128, 64) for x in trip[0])
    val = RetrievalDataset(tiny_layout, "val", image_size=shape)
    g = val.get_gallery_imgs()
    assert g.shape == (12, 3, 128, 64) and val.queries.images.shape == (4, 3, 128, 64)
    for k in (0, 10):
        ref = person_transform(shape)(load_image(tiny_layout / f"val/gallery/{k}.jpg")).to(CACHE_DTYPE).float()
        assert torch.equal(g[k], ref)
    img, gt = val[1]
    assert img.shape == (3, 128, 64) and gt == 10
    assert RetrievalDataset(tiny_layout, "test", image_size=(256, 128)).get_gallery_imgs().shape == (3, 3, 256, 128)


@pytest.mark.reliability
@pytest.mark.parametrize("size", [(1, 1), (10, 1000), (1000, 10), (4000, 3000)])
def test_extreme_sizes(size):
    out = reid_transform()(Image.new("RGB", size, (200, 100, 50)))
    assert out.shape == (3, 128, 128) and torch.isfinite(out).all()


@pytest.mark.reliability
@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I", "F", "1"])
def test_any_mode_becomes_rgb(mode):
    img = Image.new("RGB", (20, 40), (120, 60, 30)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((40, 20), 40000, dtype=np.uint16))
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == (20, 40)
    assert reid_transform()(rgb).shape == (3, 128, 128)


@pytest.mark.reliability
def test_i16_is_scaled_not_clipped():
    img = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert np.asarray(to_rgb(img))[0, 0, 0] == 127           # 32768 / 65535 · 255 = 127.5 → 127


def test_gallery_is_ordered_by_number(tiny_layout):
    ds = RetrievalDataset(tiny_layout, "val")
    g = ds.get_gallery_imgs()
    assert g.shape == (12, 3, 128, 128)
    t = reid_transform()
    for k in (0, 2, 10, 11):
        ref = t(load_image(tiny_layout / f"val/gallery/{k}.jpg")).to(CACHE_DTYPE).float()
        assert torch.equal(g[k], ref)
    assert ds.gallery_paths[10] == "val/gallery/10.jpg"
    assert ds.gt.tolist() == [3, 10, 0, 2] and len(ds) == 4
    img, gt = ds[1]
    assert img.shape == (3, 128, 128) and gt == 10


def test_test_split_has_unknown_gt_and_keeps_csv_order(tiny_layout):
    ds = RetrievalDataset(tiny_layout, "test")
    assert ds.gt.tolist() == [UNKNOWN_GT, UNKNOWN_GT] and not ds.has_gt
    assert ds.query_paths == ["test/query/7001.jpg", "test/query/7000.jpg"]


def test_retrieval_loader_keeps_order(tiny_layout):
    ds = RetrievalDataset(tiny_layout, "val")
    loader = retrieval_loader(ds, batch_size=3)
    imgs, gts = zip(*loader)
    assert torch.cat(gts).tolist() == ds.gt.tolist()
    assert torch.equal(torch.cat(imgs), ds.queries.images.float())


def test_cache_is_float16_and_small(tiny_layout):
    ds = IDLossDataset(tiny_layout / "train_idloss.csv")
    assert ds.cache.images.dtype == CACHE_DTYPE
    assert ds.cache.nbytes / len(ds) <= 100_000                  # 3·128·128·2 = 98,304 bytes
    assert ds.ids.tolist() == [0, 0, 1, 1, 2, 2] and ds.num_ids == 3
    batch = ds.cache.batch(torch.tensor([5, 0]))
    assert batch.shape == (2, 3, 128, 128) and batch.dtype == torch.float32


def test_triplets_decode_each_file_once(tiny_layout):
    ds = TripletDataset(tiny_layout / "train_random_triplet.csv")
    assert len(ds) == 3 and ds.triplets.shape == (3, 3)
    assert len(ds.cache) == 6                        # 9 cells name 6 distinct files
    a, p, n = ds[0]
    assert a.shape == p.shape == n.shape == (3, 128, 128)


def test_triplets_take_identities_from_the_id_table(tiny_layout):
    ds = TripletDataset(tiny_layout / "train_random_triplet.csv")
    ids = IDLossDataset(tiny_layout / "train_idloss.csv")
    assert ds.label_from(ids) is ds
    for a, p, n in ds.triplets.tolist():
        assert ds.ids[a] == ds.ids[p] != ds.ids[n]
    known = dict(zip(ids.paths, ids.ids.tolist()))
    assert ds.ids.tolist() == [known[p] for p in ds.cache.paths]


@pytest.mark.reliability
def test_triplet_identities_errors_name_the_csv(tiny_layout):
    ds = TripletDataset(tiny_layout / "train_random_triplet.csv")
    ids = IDLossDataset(tiny_layout / "train_idloss.csv")
    short = copy.copy(ids)
    short.paths, short.ids = ids.paths[1:], ids.ids[1:]
    with pytest.raises(DataError, match=r"train_random_triplet\.csv: 1 image\(s\) have no identity"):
        ds.label_from(short)
    swapped = copy.copy(ids)
    swapped.ids = torch.arange(len(ids.ids))  # every image its own identity: no positive agrees
    with pytest.raises(DataError, match="disagrees with the identities"):
        ds.label_from(swapped)


@pytest.mark.reliability
@pytest.mark.parametrize("form", ["relative", "data_folder_prefix", "absolute", "bare", "backslash"])
def test_path_forms(tiny_layout, form):
    root = tiny_layout
    cell = {"relative": "train/1000.jpg", "data_folder_prefix": f"{root.name}/train/1000.jpg",
            "absolute": str(root / "train/1000.jpg"), "bare": "1000.jpg", "backslash": "train\\1000.jpg"}[form]
    csv = write_csv(root / "forms.csv", "filepath,id", [f"{cell},0"])
    ds = IDLossDataset(csv, root)
    assert ds.paths[0].resolve() == (root / "train/1000.jpg").resolve()


@pytest.mark.reliability
def test_tolerant_csv_reading(tiny_layout):
    # A byte-order mark, Windows line ends, spaces around cells and a blank line are all fine.
    path = tiny_layout / "messy.csv"
    path.write_bytes("\ufefffilepath , id\r\n train/1000.jpg , 0 \r\n\r\ntrain/1010.jpg,1\r\n".encode("utf-8"))
    ds = IDLossDataset(path, tiny_layout)
    assert ds.ids.tolist() == [0, 1]


@pytest.mark.parametrize("header,rows,message", [
    ("path,id", ["train/1000.jpg,0"], "missing column(s) filepath"),
    ("filepath,label", ["train/1000.jpg,0"], "missing column(s) id"),
    ("filepath,id", ["train/1000.jpg,zero"], "line 2: id 'zero' is not an integer"),
    ("filepath,id", ["train/1000.jpg,1.5"], "id '1.5' is not an integer"),
    ("filepath,id", ["train/1000.jpg,0", "train/1001.jpg,-3"], "line 3: id -3 is out of range"),
    ("filepath,id", ["train/1000.jpg,0", "train/1000.jpg,0"], "line 3: duplicate of line 2"),
    ("filepath,id", ["train/nope.jpg,0"], "line 2: 'train/nope.jpg' resolves to no file (tried"),
    ("filepath,id", [], "no rows"),
])
@pytest.mark.reliability
def test_csv_errors_name_file_and_row(tiny_layout, header, rows, message):
    csv = write_csv(tiny_layout / "bad.csv", header, rows)
    with pytest.raises(DataError) as err:
        IDLossDataset(csv, tiny_layout)
    assert message in str(err.value) and "bad.csv" in str(err.value)


@pytest.mark.reliability
def test_missing_file_lists_paths_tried(tiny_layout):
    csv = write_csv(tiny_layout / "bad.csv", "filepath,id", ["train/nope.jpg,0"])
    with pytest.raises(DataError) as err:
        IDLossDataset(csv, tiny_layout)
    assert str(tiny_layout / "train" / "nope.jpg") in str(err.value)


@pytest.mark.reliability
def test_id_range_checked_against_num_ids(tiny_layout):
    with pytest.raises(DataError, match="id 2 is out of range \\(expected 0..1\\)"):
        IDLossDataset(tiny_layout / "train_idloss.csv", num_ids=2)


@pytest.mark.reliability
def test_empty_csv(tiny_layout):
    (tiny_layout / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_csv(tiny_layout / "empty.csv", ("filepath", "id"))


@pytest.mark.reliability
def test_gallery_gap_and_duplicate(tiny_layout):
    (tiny_layout / "val/gallery/4.jpg").unlink()
    with pytest.raises(DataError, match="gaps, missing 4"):
        RetrievalDataset(tiny_layout, "val")
    write_jpeg(tiny_layout / "val/gallery/4.jpg", seed=1)
    shutil.copy(tiny_layout / "val/gallery/3.jpg", tiny_layout / "val/gallery/3.png")
    with pytest.raises(DataError, match="gallery index 3 appears 2 times"):
        RetrievalDataset(tiny_layout, "val")


@pytest.mark.reliability
def test_gt_must_name_a_gallery_image(tiny_layout):
    write_csv(tiny_layout / "val/gt.csv", "query,gallery", ["val/query/5001.jpg,val/query/5002.jpg"])
    with pytest.raises(DataError, match="gt.csv, line 2: gallery 'val/query/5002.jpg' is not one of the 12"):
        RetrievalDataset(tiny_layout, "val")


@pytest.mark.reliability
@pytest.mark.parametrize("kind", ["truncated", "zero_bytes", "text"])
def test_corrupt_image_names_file_and_row(tiny_layout, kind):
    path = tiny_layout / "train/1010.jpg"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "zero_bytes": b"", "text": b"not an image\n"}[kind])
    with pytest.raises(ImageDecodeError) as err:
        IDLossDataset(tiny_layout / "train_idloss.csv")
    assert "train_idloss.csv, line 4" in str(err.value) and "1010.jpg" in str(err.value)
    ds = IDLossDataset(tiny_layout / "train_idloss.csv", skip_bad=True)       # explicit opt-in
    assert len(ds) == 5 and len(ds.skipped) == 1 and ds.ids.tolist() == [0, 0, 1, 2, 2]


@pytest.mark.reliability
def test_non_ascii_file_names(tiny_layout):
    write_jpeg(tiny_layout / "train/Zoë_行人.jpg", seed=9)
    csv = write_csv(tiny_layout / "u.csv", "filepath,id", ["train/Zoë_行人.jpg,0"])
    assert len(IDLossDataset(csv, tiny_layout)) == 1


@pytest.mark.reliability
def test_find_data_root(tmp_path, tiny_layout):
    assert find_data_root(tiny_layout) == tiny_layout
    assert find_data_root(tiny_layout.parent) == tiny_layout          # one level too deep is found
    with pytest.raises(DataLayoutError, match="no such folder"):
        find_data_root(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataLayoutError, match="make_data.py synthetic"):
        find_data_root(tmp_path / "empty")


def test_count_possible_triplets_by_hand():
    # ids 0,0,1: anchor/positive pairs (0a,0b),(0b,0a) × the one negative = 2; id 1 has no pair.
    assert count_possible_triplets([0, 0, 1]) == 2
    # The handout's training set: 230 ids × 10 images → 230 · 10 · 9 · 2290.
    assert count_possible_triplets(torch.arange(230).repeat_interleave(10)) == 47_403_000


def test_fingerprint_ignores_the_predictions_the_notebook_writes(tiny_layout):
    """Filling test/pred.csv's gallery column must not move the checkpoints' folder (a re-run of
    the notebook would retrain every model); another data set must."""
    before = DataInfo(tiny_layout, "course").fingerprint
    write_csv(tiny_layout / "test/pred.csv", "query,gallery",
              ["test/query/7001.jpg,test/gallery/2.jpg", "test/query/7000.jpg,test/gallery/0.jpg"])
    assert DataInfo(tiny_layout, "course").fingerprint == before
    write_csv(tiny_layout / "test/pred.csv", "query,gallery", ["test/query/7000.jpg,", "test/query/7001.jpg,"])
    assert DataInfo(tiny_layout, "course").fingerprint != before      # other queries (order)
    write_csv(tiny_layout / "test/pred.csv", "query,gallery", ["test/query/7001.jpg,", "test/query/7000.jpg,"])
    (tiny_layout / "val/gt.csv").write_text((tiny_layout / "val/gt.csv").read_text().replace("3.jpg", "4.jpg"))
    assert DataInfo(tiny_layout, "course").fingerprint != before      # other val ground truth
