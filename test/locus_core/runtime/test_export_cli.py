from __future__ import annotations

from pathlib import Path

import pytest
import torch

from locus_core.cli.main import main
from locus_core.models import LocusModel, ModelConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = LocusModel(ModelConfig(backbone="test", input_size=(64, 80)))
    return model.save(tmp_path_factory.mktemp("ckpt") / "model.pt")


def test_export_onnx_prints_parity(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(checkpoint), "--format", "onnx", "--opset", "23", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and f"{out}: onnx" in printed and "(min per-patch cosine) 1.0000" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_export_tensorrt_without_it_is_one_line(checkpoint: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", str(checkpoint), "--format", "tensorrt", "--out", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("TensorRT" in err or "CUDA" in err)


def test_export_over_the_model_checkpoint_is_refused(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --out model.pt for model.onnx, completed by the shell: the trained model was replaced by its graph
    saved = checkpoint.read_bytes()
    assert main(["export", "--model", str(checkpoint), "--out", str(checkpoint.parent / "." / checkpoint.name)]) == 2
    assert f"{checkpoint.parent / '.' / checkpoint.name}: is the checkpoint of --model" in capsys.readouterr().err
    assert checkpoint.read_bytes() == saved


def test_export_at_another_size_prints_the_hash_of_the_model_at_that_size(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The input size is in the hash (features at another size are other features): it printed the
    # checkpoint's, which no engine or map of the exported graph's features carries.
    model = LocusModel.load(checkpoint)
    assert main(["export", "--model", str(checkpoint), "--format", "torchscript", "--size", "48", "96",
                 "--out", str(tmp_path / "m.ts")]) == 0
    printed = capsys.readouterr().out
    assert f"model {model.with_input_size((48, 96)).hash}," in printed and model.hash not in printed
