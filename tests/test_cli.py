"""Command-line behaviour shared by the front ends: usage errors, outputs that must not be written, the
zoo listing's cache state."""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from swinir_app import SwinIRConfig, build_network, zoo
from swinir_app.cli.main import main as swinir_app
from swinir_app.upscale import main as upscale

TINY = SwinIRConfig.preset("lightweight-x2").replace(depths=(2,), num_heads=(2,), embed_dim=16)


def test_usage_errors_name_the_command(capsys):
    with pytest.raises(SystemExit) as e:
        swinir_app(["upscale", "-o", "out"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert err.rstrip().endswith("(see swinir-app upscale --help)")


def overflowing_model(path):
    """Finite weights whose output overflows float32 for a bright image and not for one at the network's
    mean colour: the first convolution scaled by 1e18 (x - mean is ~0 there), the upsampler by 1e21."""
    torch.manual_seed(0)
    net = build_network(TINY).eval()
    with torch.no_grad():
        net.conv_first.weight.mul_(1e18)
        net.upsample[0].weight.mul_(1e21)
    torch.save({"params": net.state_dict()}, path)


def test_an_output_that_overflows_fails_its_image_in_one_line(tmp_path, capsys):
    overflowing_model(tmp_path / "overflow.pth")
    src = tmp_path / "in"
    src.mkdir()
    mean = np.round(np.array([0.4488, 0.4371, 0.4040]) * 65535).astype(np.uint16)  # SwinIR's RGB mean
    cv2.imwrite(str(src / "a_mean.png"), np.tile(mean[::-1], (8, 8, 1)))  # BGR: stays finite
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(src / "b_white.png")  # overflows to Inf
    code = upscale([str(src), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "overflow.pth"),
                    "--device", "cpu", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "b_white.png" in errors[0] and "NaN or Inf" in errors[0], err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_mean.png"]


@pytest.fixture
def zoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(zoo, "BUNDLED_DIR", tmp_path / "weights")
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_a_wrong_hat_file_says_where_to_get_it_and_is_not_listed_as_cached(zoo_home, capsys):
    from swinir_app.checkpoint import ModelLoadError
    from swinir_app.models import main as models

    entry = zoo.ZOO["hat-x4"]
    torch.save({"params": build_network(TINY).state_dict()}, zoo_home / entry.filename)  # a SwinIR, not HAT
    with pytest.raises(ModelLoadError) as e:
        zoo.load_model("hat-x4")
    message = str(e.value)
    assert "download it again" not in message
    assert "github.com/XPixelGroup/HAT" in message and str(zoo_home / entry.filename) in message
    (zoo_home / zoo.ZOO["hat-s-x2"].filename).write_bytes(b"not a checkpoint")
    assert models([]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert rows["hat-x4"][4] == "unusable" and rows["hat-s-x2"][4] == "unusable"
    reasons = [line for line in out.splitlines() if line.startswith("unusable:")]
    assert len(reasons) == 2 and all("XPixelGroup/HAT" in line for line in reasons)


def test_every_one_line_error_the_front_ends_caught_is_a_user_error():
    """Front ends catch :class:`UserError`; the classes they once listed one by one are all under it, and keep
    their other bases, so that an ``except ValueError`` or ``except RuntimeError`` still catches them."""
    from swinir_app.checkpoint import ModelLoadError, ModelOutputError
    from swinir_app.deploy import ExportError
    from swinir_app.distributed import DistributedError
    from swinir_app.engine import SettingError
    from swinir_app.errors import UserError
    from swinir_app.hf import LayoutError
    from swinir_app.images import ImageReadError
    from swinir_app.options import OptionsError
    from swinir_app.protocol.evaluation import EvalError
    from swinir_app.protocol.inputs import ImageError
    from swinir_app.protocol.metrics import LPIPSWeightsMissing, MetricError
    from swinir_app.train.data import DataError
    from swinir_app.train.experiment import TrainingError
    from swinir_app.video import VideoError
    from swinir_app.webui.jobs import WebError

    listed = (ModelLoadError, ExportError, OptionsError, DataError, DistributedError, TrainingError, EvalError,
              LPIPSWeightsMissing, WebError, SettingError)  # the front ends' tuples before UserError
    others = (ModelOutputError, ImageReadError, VideoError, ImageError, MetricError, LayoutError)
    assert all(issubclass(c, UserError) for c in listed + others)
    assert issubclass(SettingError, ValueError) and issubclass(MetricError, ValueError)
    assert issubclass(LayoutError, ValueError)
    assert issubclass(ModelOutputError, RuntimeError) and issubclass(LPIPSWeightsMissing, RuntimeError)
    assert issubclass(VideoError, ImageReadError)
