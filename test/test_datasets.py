"""Every loader on a tiny fixture written here: synthetic, Cityscapes (16- and 8-bit disparity), folder, rosbag2."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from syncvp_core.data.cityscapes import DisparityToDepth
from syncvp_core.data.errors import DataError
from syncvp_core.data.datasets import open_dataset
from syncvp_core.data.rosbag import depth_metres, pair_by_stamp
from syncvp_core.data.synthetic.files import write_dataset
from syncvp_core.image_msg import image_to_array, rgb_from_image

FX_B = 2262.52 * 0.209313  # Cityscapes focal length (px) × baseline (m)


def save_png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)  # mode I;16


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path)


def check_clip(clip: dict, frames: int, size: int) -> None:
    assert clip["rgb"].shape == (frames, 3, size, size) and clip["rgb"].dtype == torch.float32
    assert clip["depth"].shape == (frames, size, size) and clip["depth"].dtype == torch.float32
    assert torch.equal(clip["valid"], ~torch.isnan(clip["depth"])) and clip["valid"].dtype == torch.bool
    assert 0 <= float(clip["rgb"].min()) and float(clip["rgb"].max()) <= 1
    assert isinstance(clip["source"], str) and isinstance(clip["start"], int)


# ------------------------------------------------------------------------------------------------------ synthetic

@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, sequences=3, frames=6, size=16, seed=1, val=1)
    return root


def test_synthetic_clips_match_the_files(synth_dir):
    ds = open_dataset(f"synthetic:{synth_dir}", clip_length=3, stride=2, size=16, split="train")
    assert len(ds) == 2 * 2  # 2 train sequences × starts 0, 1 (a clip spans 5 of 6 frames)
    clip = ds[3]
    check_clip(clip, 3, 16)
    assert (clip["source"], clip["start"]) == ("seq_00001", 1)
    with np.load(synth_dir / "seq_00001.npz") as npz:
        expected_rgb = torch.from_numpy(npz["rgb"][[1, 3, 5]]).permute(0, 3, 1, 2).float() / 255
        expected_depth = torch.from_numpy(npz["depth"][[1, 3, 5]])
    assert torch.allclose(clip["rgb"], expected_rgb)
    assert torch.equal(torch.isnan(clip["depth"]), torch.isnan(expected_depth))
    assert torch.allclose(clip["depth"].nan_to_num(), expected_depth.nan_to_num())
    assert len(open_dataset(f"synthetic:{synth_dir}", 6, split="val")) == 1
    assert len(open_dataset(f"synthetic:{synth_dir}", 6)) == 3  # split None: all sequences
    check_clip(open_dataset(f"synthetic:{synth_dir}", 2, size=8)[0], 2, 8)


def test_corrupt_sequence_file_is_named_and_can_be_skipped(tmp_path, synth_dir, caplog):
    for f in synth_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    bad = tmp_path / "seq_00000.npz"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    ds = open_dataset(f"synthetic:{tmp_path}", 6)
    with pytest.raises(DataError, match="seq_00000.npz"):
        ds[0]
    lenient = open_dataset(f"synthetic:{tmp_path}?skip_bad=1", 6)
    with caplog.at_level(logging.WARNING):
        assert lenient[0]["source"] == "seq_00001" and lenient[0]["source"] == "seq_00001"
    assert [r.getMessage().count("seq_00000.npz") for r in caplog.records] == [1]  # warned once


def test_bad_specs_raise_one_line_value_errors(synth_dir):
    for spec in ["nonsense", "synthetic:", "video:/tmp", f"cityscapes:{synth_dir}?fx=abc",
                 f"synthetic:{synth_dir}?colour=1", f"synthetic:{synth_dir}?skip_bad=maybe",
                 f"rosbag:{synth_dir}?rgb=/a", f"folder:{synth_dir}/missing"]:
        with pytest.raises(ValueError) as info:
            open_dataset(spec, 2)
        assert "\n" not in str(info.value) and str(info.value)
    with pytest.raises(ValueError, match="split 'test' has no sequences; use one of train, val or None"):
        open_dataset(f"synthetic:{synth_dir}", 2, split="test")
    with pytest.raises(ValueError, match="no clip of 7 frames"):
        open_dataset(f"synthetic:{synth_dir}", 7)


# ----------------------------------------------------------------------------------------------------- cityscapes

def test_disparity_to_metres_on_hand_values():
    convert = DisparityToDepth()
    raw = np.array([0, 1, 257, 5121, 65535], np.uint16)  # d = (p - 1) / 256: invalid, 0, 1, 20, 255.99 px
    depth = convert(raw)
    assert np.isnan(depth[:2]).all()
    np.testing.assert_allclose(depth[2:], [FX_B, FX_B / 20, FX_B / (65534 / 256)], rtol=1e-6)
    eight = DisparityToDepth(scale8=0.5)(np.array([0, 10, 200], np.uint8))  # d = q·scale8
    assert np.isnan(eight[0])
    np.testing.assert_allclose(eight[1:], [FX_B / 5, FX_B / 100], rtol=1e-6)
    np.testing.assert_allclose(DisparityToDepth(fx=1000, baseline=0.5)(np.array([513], np.uint16)), [250.0])


def write_cityscapes(root: Path, frames: dict, eight_bit: bool = False) -> dict:
    """frames: {(city, seq, frame): disparity value}; 8×12 images, RGB encodes the frame number."""
    for (city, seq, frame), value in frames.items():
        stem = f"{city}_{seq:06d}_{frame:06d}"
        save_rgb(root / "rgb" / "train" / city / f"{stem}_leftImg8bit.png", np.full((8, 12, 3), frame * 10))
        disparity = np.full((8, 12), value)
        disparity[0, 2] = 0  # one invalid pixel inside the central crop (columns 2..9)
        path = root / "depth" / "train" / city / f"{stem}_disparity.png"
        if eight_bit:  # SyncVP's release: 3 identical 8-bit channels
            save_rgb(path, np.repeat(disparity[..., None], 3, axis=2))
        else:
            save_png16(path, disparity)
    return frames


def test_cityscapes_groups_runs_and_converts_16_bit_disparity(tmp_path):
    frames = {("aachen", 0, f): 257 + 256 * f for f in range(4)}  # disparity 1 + f px
    frames |= {("aachen", 0, f): 2561 for f in (10, 11, 12)}  # a second snippet of the same seq
    frames |= {("bad_honnef", 3, f): 5121 for f in (0, 1, 2)}  # city name with an underscore
    write_cityscapes(tmp_path, frames)
    save_rgb(tmp_path / "rgb" / "train" / "aachen" / "aachen_000000_000004_leftImg8bit.png", np.zeros((8, 12, 3)))
    ds = open_dataset(f"cityscapes:{tmp_path}", clip_length=3, size=8, split="train")
    names = [seq.name for seq in ds.sequences]
    assert names == ["aachen_000000_000000", "aachen_000000_000010", "bad_honnef_000003_000000"]  # frame 4: no depth
    assert len(ds) == 2 + 1 + 1
    clip = ds[1]
    check_clip(clip, 3, 8)
    assert (clip["source"], clip["start"]) == ("aachen_000000_000000", 1)
    assert torch.allclose(clip["rgb"][:, 0, 0, 0], torch.tensor([10.0, 20.0, 30.0]) / 255)
    expected = torch.tensor([FX_B / 2, FX_B / 3, FX_B / 4])
    assert torch.allclose(clip["depth"][:, 4, 4], expected, rtol=1e-5)
    assert not clip["valid"][:, 0, 0].any() and clip["valid"].sum() == 3 * 63  # pixel (0, 2) of the crop
    fx_half = open_dataset(f"cityscapes:{tmp_path}?fx=1131.26", 3, size=8, split="train")[1]
    assert torch.allclose(fx_half["depth"][:, 4, 4], expected / 2, rtol=1e-5)


def test_cityscapes_8_bit_release_with_scale_option(tmp_path):
    write_cityscapes(tmp_path, {("ulm", 7, f): 40 for f in range(3)}, eight_bit=True)
    clip = open_dataset(f"cityscapes:{tmp_path}?scale8=0.5", 3, size=8)[0]
    assert torch.allclose(clip["depth"][:, 3, 3], torch.full((3,), FX_B / 20), rtol=1e-5)
    assert clip["valid"].sum() == 3 * 63


def test_cityscapes_truncated_png_is_named(tmp_path):
    write_cityscapes(tmp_path, {("jena", 1, f): 300 for f in range(4)})
    bad = tmp_path / "depth" / "train" / "jena" / "jena_000001_000002_disparity.png"
    bad.write_bytes(bad.read_bytes()[:60])
    ds = open_dataset(f"cityscapes:{tmp_path}", 2, size=8)
    check_clip(ds[0], 2, 8)
    with pytest.raises(DataError, match="jena_000001_000002_disparity.png"):
        ds[1]
    lenient = open_dataset(f"cityscapes:{tmp_path}?skip_bad=yes", 2, size=8)
    assert lenient[1]["start"] == 0  # clips 1 and 2 contain the bad frame; wraps round to clip 0


# --------------------------------------------------------------------------------------------------------- folder

def test_folder_with_16_bit_millimetres_in_natural_order(tmp_path):
    for i in (1, 2, 10):
        save_rgb(tmp_path / "rgb" / f"frame_{i}.png", np.full((6, 6, 3), i))
        depth = np.full((6, 6), 1000 * i)
        depth[5, 5] = 0
        save_png16(tmp_path / "depth" / f"frame_{i}.png", depth)
    clip = open_dataset(f"folder:{tmp_path}", 3, size=6)[0]
    check_clip(clip, 3, 6)
    assert torch.allclose(clip["depth"][:, 0, 0], torch.tensor([1.0, 2.0, 10.0]))  # frame_2 before frame_10
    assert not clip["valid"][:, 5, 5].any() and clip["valid"].sum() == 3 * 35
    assert torch.allclose(clip["rgb"][:, 1, 0, 0], torch.tensor([1.0, 2.0, 10.0]) / 255)
    scaled = open_dataset(f"folder:{tmp_path}?depth_scale=0.0001", 3, size=6)[0]
    assert torch.allclose(scaled["depth"][:, 0, 0], torch.tensor([0.1, 0.2, 1.0]))


def test_folder_of_sequences_with_npy_metres_splits_and_missing_partners(tmp_path, caplog):
    for seq in ("drive_a", "drive_b"):
        for i in range(3):
            save_rgb(tmp_path / "val" / seq / "rgb" / f"{i:03d}.jpg", np.full((4, 8, 3), 100))
            depth = np.full((4, 8), 2.5 + i, np.float32)
            depth[0, 3] = np.nan
            (tmp_path / "val" / seq / "depth").mkdir(exist_ok=True)
            np.save(tmp_path / "val" / seq / "depth" / f"{i:03d}.npy", depth)
    ds = open_dataset(f"folder:{tmp_path}", 2, size=4, split="val")
    assert [s.name for s in ds.sequences] == ["drive_a", "drive_b"] and len(ds) == 4
    clip = ds[2]
    assert clip["source"] == "drive_b" and torch.allclose(clip["depth"][:, 2, 2], torch.tensor([2.5, 3.5]))
    assert clip["valid"].sum() == 2 * 15  # the NaN at column 3 lands in the 4×4 centre crop (columns 2..5)
    save_rgb(tmp_path / "val" / "drive_a" / "rgb" / "003.png", np.zeros((4, 8, 3)))
    with pytest.raises(DataError, match="003.png: has no depth partner"):
        open_dataset(f"folder:{tmp_path}", 2, size=4, split="val")
    with caplog.at_level(logging.WARNING):
        assert len(open_dataset(f"folder:{tmp_path}?skip_bad=1", 2, size=4, split="val")) == 4
    assert "003.png" in caplog.text


# -------------------------------------------------------------------------------------------------------- rosbag2

TYPES = get_typestore(Stores.ROS2_JAZZY)
ImageMsg = TYPES.types["sensor_msgs/msg/Image"]
Header = TYPES.types["std_msgs/msg/Header"]
Time = TYPES.types["builtin_interfaces/msg/Time"]


def image_msg(pixels: np.ndarray, encoding: str, stamp_ns: int = 0, pad: int = 0, bigendian: bool = False):
    """A sensor_msgs/msg/Image of an H×W[×C] array, each row followed by `pad` junk bytes."""
    height, width = pixels.shape[:2]
    raw = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")))
    rows = raw.view(np.uint8).reshape(height, -1)
    data = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1).reshape(-1)
    return ImageMsg(header=Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="cam"),
                    height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                    step=rows.shape[1] + pad, data=data)


def test_image_decoding_honours_encoding_step_and_endianness():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((3, 5, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(rgb_from_image(image_msg(rgb, "rgb8", pad=3)), rgb)
    assert np.array_equal(rgb_from_image(image_msg(rgb[..., ::-1], "bgr8", pad=1)), rgb)
    assert np.array_equal(rgb_from_image(image_msg(rgba, "rgba8")), rgb)
    assert np.array_equal(rgb_from_image(image_msg(rgba[..., [2, 1, 0, 3]], "bgra8", pad=4)), rgb)
    assert np.array_equal(rgb_from_image(image_msg(rgb[..., 0], "mono8", pad=2)), np.repeat(rgb[..., :1], 3, 2))
    millimetres = np.array([[0, 1500, 65535]], np.uint16)
    for bigendian in (False, True):
        assert np.array_equal(image_to_array(image_msg(millimetres, "16UC1", pad=2, bigendian=bigendian)),
                              millimetres)
        metres = depth_metres(image_msg(millimetres.astype(np.float32) / 1000, "32FC1", bigendian=bigendian), 0.001)
        np.testing.assert_allclose(metres, millimetres / 1000)
    np.testing.assert_allclose(depth_metres(image_msg(millimetres, "16UC1"), 0.001), [[0, 1.5, 65.535]])
    short = image_msg(rgb, "rgb8")
    short.step = 14  # less than 5 pixels × 3 bytes
    for bad, match in [(short, "step 14 < width 5 x 3 bytes per pixel"),
                       (image_msg(rgb, "yuv422"), "must be one of rgb8, bgr8, rgba8, bgra8, mono8")]:
        with pytest.raises(ValueError, match=match):
            rgb_from_image(bad)
    with pytest.raises(ValueError, match="expected 32FC1 or 16UC1"):
        depth_metres(image_msg(rgb, "rgb8"), 0.001)


def test_pairing_keeps_mutual_nearest_stamps_within_slop():
    rgb = np.array([0, 100, 200, 300])
    depth = np.array([5, 104, 108, 260, 400])
    assert pair_by_stamp(rgb, depth, 10) == [(0, 0), (1, 1)]  # 200 has no depth within 10; 300's nearest is 260
    assert pair_by_stamp(rgb, depth, 50) == [(0, 0), (1, 1), (3, 3)]  # 108 and 260 are nearer to others
    assert pair_by_stamp(rgb, np.array([], int), 10) == []


def write_bag(path: Path, plugin: StoragePlugin, frames: int = 4) -> np.ndarray:
    """RGB bgr8 with padded rows at 10 Hz and 16UC1 depth 3 ms later, plus one depth with no RGB partner."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (frames, 6, 6, 3), dtype=np.uint8)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        rgb_conn = writer.add_connection("/cam/color", ImageMsg.__msgtype__, typestore=TYPES)
        depth_conn = writer.add_connection("/cam/depth", ImageMsg.__msgtype__, typestore=TYPES)
        for i in range(frames):
            stamp = 10**9 + i * 100_000_000
            writer.write(rgb_conn, stamp, TYPES.serialize_cdr(image_msg(rgb[i, ..., ::-1], "bgr8", stamp, pad=6),
                                                              ImageMsg.__msgtype__))
            depth = np.full((6, 6), 1000 * (i + 1), np.uint16)
            depth[2, 3] = 0
            writer.write(depth_conn, stamp + 3_000_000, TYPES.serialize_cdr(
                image_msg(depth, "16UC1", stamp + 3_000_000, pad=2, bigendian=i % 2 == 1), ImageMsg.__msgtype__))
        lone = 10**9 + frames * 100_000_000 + 50_000_000
        writer.write(depth_conn, lone, TYPES.serialize_cdr(image_msg(np.ones((6, 6), np.uint16), "16UC1", lone),
                                                           ImageMsg.__msgtype__))
    return rgb


@pytest.mark.parametrize("plugin", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_rosbag_pairs_rgb_and_depth(tmp_path, plugin):
    rgb = write_bag(tmp_path / "bag", plugin)
    ds = open_dataset(f"rosbag:{tmp_path / 'bag'}?rgb=/cam/color&depth=/cam/depth&slop=0.01", 2, size=6)
    assert len(ds) == 3 and ds.sequences[0].name == "bag"  # 4 pairs; the lone depth message is dropped
    clip = ds[2]
    check_clip(clip, 2, 6)
    assert clip["start"] == 2
    assert torch.equal((clip["rgb"] * 255).round().to(torch.uint8), torch.from_numpy(rgb[2:4]).permute(0, 3, 1, 2))
    assert torch.allclose(clip["depth"][:, 0, 0], torch.tensor([3.0, 4.0]))
    assert not clip["valid"][:, 2, 3].any() and clip["valid"].sum() == 2 * 35
    with pytest.raises(ValueError, match="no .* within 0.001 s"):
        open_dataset(f"rosbag:{tmp_path / 'bag'}?rgb=/cam/color&depth=/cam/depth&slop=0.001", 2, size=6)
    with pytest.raises(DataError, match="no topic /nope; its Image topics are: /cam/color, /cam/depth"):
        open_dataset(f"rosbag:{tmp_path / 'bag'}?rgb=/nope&depth=/cam/depth", 2, size=6)


@pytest.mark.parametrize("plugin", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_corrupt_rosbag_is_named(tmp_path, plugin):
    write_bag(tmp_path / "bag", plugin)
    storage = next(p for p in (tmp_path / "bag").iterdir() if p.suffix in (".db3", ".mcap"))
    storage.write_bytes(storage.read_bytes()[:300])  # truncated
    with pytest.raises(DataError, match=f"{tmp_path / 'bag'}: cannot read rosbag2"):
        open_dataset(f"rosbag:{tmp_path / 'bag'}?rgb=/cam/color&depth=/cam/depth", 2, size=6)
