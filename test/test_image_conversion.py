"""Image ↔ NumPy conversion (every encoding, padded steps, both endiannesses) and the validation layer: reading
is syncvp_core.image_msg, writing syncvp_ros.image_conversion. Plain pytest + hypothesis, no rclpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sensor_msgs.msg import Image

from syncvp_core.image_msg import (ENCODINGS, REJECT_KINDS, BadImage, depth_from_image, image_to_array, quoted,
                                   rgb_from_image)
from syncvp_ros.image_conversion import array_to_image

SIZES = st.tuples(st.integers(1, 9), st.integers(1, 9))


@st.composite
def images(draw, encoding=st.sampled_from(sorted(ENCODINGS))):
    """(pixels, encoding, padding bytes per row, big-endian) with any values, NaN and inf included."""
    enc = draw(encoding)
    h, w = draw(SIZES)
    c = ENCODINGS[enc].channels
    shape = (h, w) if c == 1 else (h, w, c)
    pixels = draw(hnp.arrays(ENCODINGS[enc].dtype, shape))
    return pixels, enc, draw(st.integers(0, 7)), draw(st.booleans())


@given(images())
@settings(max_examples=150, deadline=None)
def test_round_trip_is_exact_for_every_encoding_padding_and_endianness(case):
    pixels, enc, pad, big = case
    row = pixels.shape[1] * ENCODINGS[enc].channels * pixels.dtype.itemsize
    msg = array_to_image(pixels, enc, step=row + pad, is_bigendian=big)
    assert (msg.step, len(msg.data), msg.is_bigendian) == (row + pad, (row + pad) * pixels.shape[0], big)
    back = image_to_array(msg)
    assert back.dtype == pixels.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)  # NaN == NaN here, bit patterns included for finite values


def test_endianness_is_read_from_the_message_not_assumed():
    msg = Image(height=1, width=2, encoding="16UC1", is_bigendian=True, step=4, data=bytes([0x01, 0x02, 0x00, 0x10]))
    np.testing.assert_array_equal(image_to_array(msg), [[0x0102, 0x0010]])
    msg.is_bigendian = False
    np.testing.assert_array_equal(image_to_array(msg), [[0x0201, 0x1000]])


def test_padding_bytes_are_skipped_not_read_as_pixels():
    # 2x2 rgb8 rows padded to 8 bytes with 0xEE garbage
    data = bytes([1, 2, 3, 4, 5, 6, 0xEE, 0xEE, 7, 8, 9, 10, 11, 12, 0xEE, 0xEE])
    msg = Image(height=2, width=2, encoding="rgb8", step=8, data=data)
    np.testing.assert_array_equal(image_to_array(msg), np.arange(1, 13, dtype=np.uint8).reshape(2, 2, 3))


@given(st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]), SIZES, st.integers(0, 5), st.data())
@settings(max_examples=100, deadline=None)
def test_every_rgb_encoding_decodes_to_the_same_rgb(enc, size, pad, data):
    rgb = data.draw(hnp.arrays(np.uint8, size + (3,)))
    if enc == "mono8":
        rgb[..., 1] = rgb[..., 2] = rgb[..., 0]
    pixels = rgb[..., 0] if enc == "mono8" else (rgb[..., ::-1] if enc.startswith("bgr") else rgb)
    if enc.endswith("a8"):
        pixels = np.concatenate([pixels, np.full(size + (1,), 7, np.uint8)], -1)
    row = size[1] * ENCODINGS[enc].channels
    out = rgb_from_image(array_to_image(np.ascontiguousarray(pixels), enc, step=row + pad))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_depth_16uc1_is_scaled_and_zero_is_invalid():
    raw = np.array([[0, 1000, 2500], [65535, 7, 100]], np.uint16)
    depth = depth_from_image(array_to_image(raw, "16UC1", is_bigendian=True), 0.001, 0.005, 1000.0)
    expected = np.array([[np.nan, 1.0, 2.5], [65.535, 0.007, 0.1]], np.float32)
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert depth.dtype == np.float32


def test_depth_32fc1_rep118_markers_and_range_become_nan():
    raw = np.array([[np.nan, np.inf, -np.inf, 0.0], [-1.0, 0.05, 5.0, 2000.0]], np.float32)
    depth = depth_from_image(array_to_image(raw, "32FC1"), 0.001, 0.1, 1000.0)
    assert np.isnan(depth).tolist() == [[True] * 4, [True, True, False, True]]
    assert depth[1, 2] == 5.0


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 6))), st.booleans())
@settings(max_examples=100, deadline=None)
def test_depth_validation_property(raw, big):
    """Any float32 frame: either rejected as invalid_depth (no valid pixel) or NaN exactly where invalid."""
    msg = array_to_image(raw, "32FC1", is_bigendian=big)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(raw) & (raw >= 0.1) & (raw <= 100.0)
    if not valid.any():
        with pytest.raises(BadImage) as err:
            depth_from_image(msg, 0.001, 0.1, 100.0)
        assert err.value.kind == "invalid_depth"
        return
    depth = depth_from_image(msg, 0.001, 0.1, 100.0)
    np.testing.assert_array_equal(np.isnan(depth), ~valid)
    np.testing.assert_array_equal(depth[valid], raw[valid])


BAD_MESSAGES = [
    ("encoding", Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8))),
    ("encoding", Image(height=2, width=2, encoding="", step=6, data=bytes(12))),
    ("size", Image(height=0, width=0, encoding="rgb8", step=0, data=b"")),
    ("step", Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(10))),
    ("data_length", Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11))),
    ("data_length", Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(17))),
]


@pytest.mark.parametrize("kind,msg", BAD_MESSAGES)
def test_malformed_messages_raise_bad_image_with_their_kind(kind, msg):
    with pytest.raises(BadImage) as err:
        image_to_array(msg)
    assert err.value.kind == kind and err.value.kind in REJECT_KINDS


def test_modality_specific_encodings_are_enforced():
    depth_msg = array_to_image(np.ones((2, 2), np.float32), "32FC1")
    rgb_msg = array_to_image(np.ones((2, 2, 3), np.uint8), "rgb8")
    for call in (lambda: rgb_from_image(depth_msg), lambda: depth_from_image(rgb_msg, 0.001, 0.1, 10.0)):
        with pytest.raises(BadImage) as err:
            call()
        assert err.value.kind == "encoding"


@given(st.sampled_from(sorted(ENCODINGS)), st.integers(0, 6), st.integers(0, 6), st.integers(0, 40),
       st.integers(0, 200), st.booleans())
@settings(max_examples=200, deadline=None)
def test_any_header_and_buffer_either_decodes_consistently_or_raises_bad_image(enc, h, w, step, length, big):
    """Fuzz the header fields against the buffer: never an IndexError/segfault, only BadImage or a valid array."""
    msg = Image(height=h, width=w, encoding=enc, step=step, is_bigendian=big, data=bytes(length))
    try:
        arr = image_to_array(msg)
    except BadImage as e:
        assert e.kind in ("size", "step", "data_length")
        return
    assert length == step * h and step >= w * ENCODINGS[enc].channels * ENCODINGS[enc].dtype.itemsize
    assert arr.shape[:2] == (h, w)


def test_sender_sized_strings_are_cut_in_reasons():
    msg = array_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    msg.encoding = "y" * 300
    with pytest.raises(BadImage) as err:
        rgb_from_image(msg)
    assert len(str(err.value)) < 150 and "(300 characters)" in str(err.value)
    assert quoted("cam") == "'cam'"
