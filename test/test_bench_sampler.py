"""benchmarks/bench_sampler.py at a tiny size: the curve's JSON and plot, and one-line argument errors."""
import importlib.util
import json
import pathlib

import pytest
from PIL import Image

from syncvp_core.data.synthetic.files import write_dataset

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sampler.py"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_script():
    """The script as a module, in this process (a subprocess would pay torch's import for each case)."""
    spec = importlib.util.spec_from_file_location("bench_sampler", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_sampler = load_script()


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("held_out")
    write_dataset(out, sequences=3, frames=12, size=64, seed=4, test=3, samples=1)
    return out


def test_curve_json_and_plot(held_out, tmp_path):
    assert bench_sampler.main(["--checkpoint", "preset:tiny", "--data", f"synthetic:{held_out}", "--clips", "2",
                               "--evals", "25", "2", "--samplers", "ddim-eta1", "dpmsolver", "--device", "cpu",
                               "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "sampler_curve.json").read_text())
    assert summary["clips"] == 2 and summary["split"] == "test" and summary["horizon"] == 8
    assert [(p["sampler"], p["evals"]) for p in summary["points"]] == [
        ("ddim-eta1", 2), ("ddim-eta1", 25), ("dpmsolver", 2), ("dpmsolver", 25)]
    for point in summary["points"]:
        assert 0 < point["rgb_ssim"] <= 1 and point["rgb_lpips"] >= 0 and point["depth_abs_rel"] >= 0
    reference = summary["points"][1]
    assert reference["rgb_lpips_vs_reference"] == 1.0 and reference["depth_abs_rel_vs_reference"] == 1.0
    assert summary["fewest_evals_within_tolerance"]["ddim-eta1"] in (2, 25)
    with Image.open(tmp_path / "sampler_curve.png") as png:
        assert png.width > png.height > 100


@pytest.mark.parametrize("argv,needle", [
    (["--evals", "0"], "--evals"),
    (["--samplers", "plms"], "--samplers"),
    (["--clips", "-1"], "--clips"),
])
def test_bad_arguments_exit_with_one_line(tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) as done:
        bench_sampler.main(["--data", "synthetic:/nowhere", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and len(err.splitlines()) == 1 and needle in err


def test_missing_data_is_one_line(tmp_path, capsys):
    code = bench_sampler.main(["--checkpoint", "preset:tiny", "--data", f"synthetic:{tmp_path / 'none'}",
                               "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "not found" in err
