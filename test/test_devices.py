"""`resolve_device`: auto picks CUDA when present, else the CPU with one warning; unusable names fail with one line."""
import pytest
import torch

from syncvp_core.devices import CPU_FALLBACK, resolve_device


def test_auto_prefers_cuda_and_warns_once_when_it_falls_back_to_the_cpu():
    said = []
    assert resolve_device("auto", said.append, cuda_count=1) == torch.device("cuda") and said == []
    assert resolve_device("auto", said.append, cuda_count=0) == torch.device("cpu") and said == [CPU_FALLBACK]
    assert resolve_device("auto", cuda_count=0) == torch.device("cpu")  # no one to tell: silent


def test_explicit_devices_are_checked_against_the_machine():
    assert resolve_device("cpu", cuda_count=0) == resolve_device("cpu", cuda_count=1) == torch.device("cpu")
    assert resolve_device("cuda", cuda_count=1) == torch.device("cuda")
    assert resolve_device("cuda:1", cuda_count=2) == torch.device("cuda", 1)
    for name, count, needle in (("cuda", 0, "0 CUDA device"), ("cuda:2", 2, "2 CUDA device"),
                                ("gpu", 1, "unknown device 'gpu'"), ("cuda:", 1, "unknown device")):
        with pytest.raises(ValueError, match=needle):
            resolve_device(name, cuda_count=count)


def test_default_count_is_torchs():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
