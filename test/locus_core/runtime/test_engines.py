from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from locus_core.models import LocusModel, ModelConfig
from locus_core.runtime import EngineError, ExportError, create_engine, export_model, parity
from locus_core.runtime.engines import OnnxEngine, TensorRTEngine, TorchEngine

SIZE = (64, 80)


@pytest.fixture(scope="module")
def model() -> LocusModel:
    torch.manual_seed(0)
    return LocusModel(ModelConfig(backbone="test", input_size=SIZE, radii=(0.2, 0.6))).eval()


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # One cache for the module: each engine test reuses the graph the first one exported.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _images(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, *SIZE, generator=torch.Generator().manual_seed(1))


def test_onnx_export_matches_pytorch(model: LocusModel, tmp_path: Path) -> None:
    path, score = export_model(model, tmp_path / "m.onnx", "onnx")
    assert path.is_file() and score >= 0.999
    engine = OnnxEngine(model, path)
    with torch.inference_mode():
        assert parity(model(_images()), engine(_images())) >= 0.999  # batch 2: the batch axis is symbolic


def test_dynamic_onnx_takes_other_sizes(model: LocusModel, tmp_path: Path) -> None:
    path, _ = export_model(model, tmp_path / "d.onnx", "onnx", dynamic=True)
    engine = OnnxEngine(model, path)
    images = torch.rand(1, 3, 48, 96)
    with torch.inference_mode():
        assert parity(model(images), engine(images)) >= 0.999


def test_torchscript_export_matches_pytorch(model: LocusModel, tmp_path: Path) -> None:
    _, score = export_model(model, tmp_path / "m.ts", "torchscript")
    assert score >= 0.999


def test_engine_contract_matches_model(model: LocusModel) -> None:
    engine = create_engine(model, "onnxruntime")
    assert isinstance(engine, OnnxEngine)
    assert (engine.hash, engine.stride, engine.input_size, engine.scales) == (
        model.hash, model.stride, model.input_size, model.scales
    )
    with torch.inference_mode():
        assert engine(_images()).shape == model(_images()).shape


def test_wrong_input_size_is_named(model: LocusModel) -> None:
    engine = create_engine(model, "onnxruntime")
    with pytest.raises(EngineError, match=r"takes \(B,3,64,80\) images, got \(1, 3, 32, 32\)"):
        engine(torch.rand(1, 3, 32, 32))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")
def test_tensorrt_falls_back_with_the_reason_logged(model: LocusModel, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        engine = create_engine(model, "tensorrt")
    assert engine.name == "onnxruntime"
    assert any("tensorrt" in reason for reason in engine.fallbacks)
    assert "device tensorrt unavailable, using onnxruntime" in caplog.text


def test_cpu_is_eager_pytorch(model: LocusModel) -> None:
    engine = create_engine(model, "cpu")
    assert isinstance(engine, TorchEngine) and engine.fallbacks == []


def test_unknown_device_lists_valid_ones(model: LocusModel) -> None:
    with pytest.raises(EngineError, match="device: unknown 'tpu'; valid: auto, cpu, cuda, onnxruntime, tensorrt"):
        create_engine(model, "tpu")


def test_unknown_format_is_rejected(model: LocusModel, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        export_model(model, tmp_path / "m.tflite", "tflite")  # type: ignore[arg-type]


def test_broken_onnx_file_is_named(model: LocusModel, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(EngineError, match="broken.onnx: ONNX Runtime cannot load it"):
        OnnxEngine(model, broken)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_engine_matches_cpu(model: LocusModel) -> None:
    engine = create_engine(model, "cuda")
    with torch.inference_mode():
        assert parity(model.cpu()(_images()), engine(_images()).cpu()) >= 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_tensorrt_engine_is_cached_and_matches(model: LocusModel) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    engine = TensorRTEngine(model)
    assert engine.engine_path.is_file()
    again = TensorRTEngine(model)  # loads the cached engine: same key
    with torch.inference_mode():
        assert parity(model.cpu()(_images()), again(_images()).cpu()) >= 0.99
