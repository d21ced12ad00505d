from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from locus_core.models import LocusModel, ModelConfig
from locus_core.runtime import EngineError, ExportError, RuntimeUnavailable, create_engine, export_model, parity
from locus_core.runtime.engines import OnnxEngine, TensorRTEngine, TorchEngine
from locus_core.runtime.graph_cache import cached_int8_onnx, cached_onnx, engine_key

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
    images = torch.rand(1, 3, 50, 90)  # not multiples of the stride: cropped, as the model does
    with torch.inference_mode():
        assert parity(model(images), engine(images)) >= 0.999
    with pytest.raises(EngineError, match=r"takes \(B,3,H >= 8, W >= 8\) images, got \(1, 1, 48, 96\)"):
        engine(torch.rand(1, 1, 48, 96))
    with pytest.raises(EngineError, match=r"takes \(B,3,H >= 8, W >= 8\) images, got \(1, 3, 4, 96\)"):
        engine(torch.rand(1, 3, 4, 96))
    with pytest.raises(EngineError, match="takes float RGB images"):
        engine((images * 255).to(torch.uint8))


def test_opset_23_fuses_attention_and_matches(model: LocusModel, tmp_path: Path) -> None:
    import onnx

    path, score = export_model(model, tmp_path / "a.onnx", "onnx", opset=23)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Attention" in ops and score >= 0.999


def test_local_attention_exports_at_a_fixed_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    local = LocusModel(ModelConfig(backbone="test", input_size=SIZE, radii=(0.2,), attention_radii=(2, 0))).eval()
    path, score = export_model(local, tmp_path / "local.onnx", "onnx")
    assert score >= 0.999
    with torch.inference_mode():
        images = torch.rand(3, 3, *SIZE)  # the batch axis is symbolic
        assert parity(local(images), OnnxEngine(local, path)(images)) >= 0.999
    assert export_model(local, tmp_path / "local.ts", "torchscript")[1] >= 0.999
    with pytest.raises(ExportError, match="local attention, which exports at a fixed input size"):
        export_model(local, tmp_path / "dynamic.onnx", "onnx", dynamic=True)


def test_a_vit_does_not_export_at_dynamic_sizes(tmp_path: Path) -> None:
    # It exported and passed parity at its own size, and failed in ONNX Runtime at every other.
    vit = LocusModel(ModelConfig(backbone="dino_vits8", input_size=SIZE), backbone_weights="random").eval()
    with pytest.raises(ExportError, match="backbone dino_vits8 has a position embedding for one input size"):
        export_model(vit, tmp_path / "vit.onnx", "onnx", dynamic=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("size", [SIZE, (72, 88)])  # grids 8x10 and 9x11: the last blocks are smaller
def test_pooled_global_attention_exports(tmp_path: Path, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    pooled = LocusModel(ModelConfig(backbone="test", input_size=size, radii=(0.2,), attention_radii=(2, 0), kv_pool=2))
    pooled = pooled.eval()
    for opset in (18, 23):
        assert export_model(pooled, tmp_path / f"pooled{opset}.onnx", "onnx", opset=opset)[1] >= 0.999
    assert export_model(pooled, tmp_path / "pooled.ts", "torchscript")[1] >= 0.999


def test_pooled_global_attention_exports_for_any_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pooled = LocusModel(ModelConfig(backbone="test", input_size=SIZE, radii=(0.2,), kv_pool=2)).eval()
    path, score = export_model(pooled, tmp_path / "dynamic.onnx", "onnx", dynamic=True)
    other = pooled.with_input_size((72, 88))  # a 9x11 grid: the last blocks are smaller
    with torch.inference_mode():
        images = torch.rand(2, 3, 72, 88)
        assert score >= 0.999 and parity(other(images), OnnxEngine(other, path)(images)) >= 0.999


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_writes_only_a_checked_file(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    import locus_core.runtime.export as export

    path = tmp_path / "model.out"
    path.write_bytes(b"previous")
    during_check = []

    def disagrees(reference: torch.Tensor, candidate: torch.Tensor) -> float:
        during_check.append(path.read_bytes())
        return 0.5

    monkeypatch.setattr(export, "parity", disagrees)
    with pytest.raises(ExportError, match=rf"model.out: exported {fmt} graph \(not written\) disagrees .* 0.5000 < 0.999\)"):
        export_model(model, path, fmt)
    assert during_check == [b"previous"]  # checked before it replaced the file
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["model.out"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_whose_file_cannot_be_written_leaves_no_temporary(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # A full disk while saving: export_torchscript left its cut-short .model.out.tmp<pid> behind
    import locus_core.runtime.export as export

    class Graph:
        def save(self, f: str) -> None:
            Path(f).write_bytes(b"half a graph")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", lambda *args, **kwargs: Graph())
    monkeypatch.setattr(torch.jit, "trace", lambda *args, **kwargs: Graph())
    path = tmp_path / "model.out"
    path.write_bytes(b"previous")
    write = export.export_onnx if fmt == "onnx" else export.export_torchscript
    with pytest.raises((OSError, ExportError), match="No space left"):
        write(model, path)
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["model.out"]


def test_an_export_giving_nan_features_is_refused(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A NaN cosine compares False with every bound: it passed the check as if it agreed.
    run = OnnxEngine.forward

    def overflows(self: OnnxEngine, images: torch.Tensor) -> torch.Tensor:
        features = run(self, images)
        features[0, 0, :, 0, 0] = float("nan")
        return features

    monkeypatch.setattr(OnnxEngine, "forward", overflows)
    with pytest.raises(ExportError, match=r"nan.onnx: exported onnx graph \(not written\) disagrees .* -1.0000 < 0.999\)"):
        export_model(model, tmp_path / "nan.onnx", "onnx")
    assert not list(tmp_path.iterdir())
    features = torch.nn.functional.normalize(torch.rand(1, 1, 4, 2, 2), dim=2)
    assert parity(features, torch.full_like(features, float("inf"))) == -1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks an export that cannot start, on a machine without CUDA")
def test_a_tensorrt_export_that_cannot_start_keeps_the_file_there(model: LocusModel, tmp_path: Path) -> None:
    path = tmp_path / "model.engine"
    path.write_bytes(b"an engine built earlier")
    with pytest.raises(RuntimeUnavailable):
        export_model(model, path, "tensorrt")
    assert path.read_bytes() == b"an engine built earlier"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_to_a_folder_or_under_a_file_is_refused_before_exporting(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    import locus_core.runtime.export as export

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported all the same")

    monkeypatch.setattr(export, "export_onnx", never)
    monkeypatch.setattr(export, "export_torchscript", never)
    # os.replace failed with a bare OSError, after the export and its check
    with pytest.raises(ExportError, match=rf"{tmp_path}: is a folder; the export needs a file name"):
        export_model(model, tmp_path, fmt)
    (tmp_path / "model.pt").write_bytes(b"a checkpoint")
    with pytest.raises(ExportError, match=r"model.pt/m.out: cannot make its folder .*model.pt \(File exists\)"):
        export_model(model, tmp_path / "model.pt" / "m.out", fmt)
    assert (tmp_path / "model.pt").read_bytes() == b"a checkpoint"


def test_a_cache_folder_that_cannot_be_made_falls_back(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only home on a robot: create_engine raised the exporter's OSError instead of falling back.
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "file" / "cache"))
    engine = create_engine(model, "onnxruntime")
    assert isinstance(engine, TorchEngine)
    assert "cannot make its folder" in engine.fallbacks[0]


@pytest.mark.parametrize("fmt", ["torchscript", "tensorrt"])
def test_dynamic_sizes_are_refused_for_formats_of_one_size(model: LocusModel, tmp_path: Path, fmt: str) -> None:
    # Ignored before: a file traced at one size, taken for one that runs at any
    with pytest.raises(ExportError, match=rf"dynamic input sizes export to ONNX only; {fmt} runs at one input size"):
        export_model(model, tmp_path / "m.out", fmt, dynamic=True)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_unsupported_opset_is_named(model: LocusModel, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="opset 17 not supported; valid: 18, 23"):
        export_model(model, tmp_path / "o.onnx", "onnx", opset=17)


def test_export_at_another_size_runs_at_that_size(model: LocusModel, tmp_path: Path) -> None:
    path, score = export_model(model, tmp_path / "s.onnx", "onnx", input_size=(48, 96))
    resized = model.with_input_size((48, 96))
    engine = OnnxEngine(resized, path)
    images = torch.rand(1, 3, 48, 96)
    with torch.inference_mode():
        assert score >= 0.999 and parity(resized(images), engine(images)) >= 0.999


@pytest.mark.parametrize(("policy", "spinning"), [("PASSIVE", "0"), ("ACTIVE", "1")])
def test_onnxruntime_spins_as_omp_wait_policy_says(
    model: LocusModel, monkeypatch: pytest.MonkeyPatch, policy: str, spinning: str
) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    engine = OnnxEngine(model, threads=1)
    assert engine.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == spinning


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


def test_uint8_images_are_refused_as_by_pytorch(model: LocusModel, tmp_path: Path) -> None:
    from locus_core.runtime.engines import TorchScriptEngine

    frames = (_images() * 255).to(torch.uint8)
    torchscript = TorchScriptEngine(model, export_model(model, tmp_path / "m.ts", "torchscript")[0])
    for engine in (create_engine(model, "onnxruntime"), torchscript):
        with pytest.raises(EngineError, match=r"takes float RGB images in \[0, 1\], got torch.uint8"):
            engine(frames)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")
def test_tensorrt_falls_back_with_the_reason_logged(model: LocusModel, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        engine = create_engine(model, "tensorrt")
    assert engine.name == "onnxruntime"
    assert any("tensorrt" in reason for reason in engine.fallbacks)
    assert "device tensorrt unavailable, using onnxruntime" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_engine(model, "tensorrt")
    assert "unavailable" not in caplog.text  # the same reason is logged once per process


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


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_cached_graph_cut_short_is_made_again(
    model: LocusModel, precision: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A power cut after the rename, before the data reached the disk: every start fell back to a
    # slower runtime until someone deleted the file.
    path = cached_onnx(model) if precision == "fp32" else cached_int8_onnx(model)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])
    with caplog.at_level(logging.WARNING):
        engine = create_engine(model, "onnxruntime", precision=precision)
    assert engine.fallbacks == [] and engine.path == path and path.stat().st_size > len(whole) // 3
    assert f"{path}: ONNX Runtime cannot load it" in caplog.text and "making it again" in caplog.text
    with torch.inference_mode():
        assert parity(model(_images()), engine(_images())) > 0.98


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_without_onnxruntime_the_cached_graph_is_kept_and_eager_runs(
    model: LocusModel, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cached_onnx(model)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    engine = create_engine(model, "onnxruntime", precision=precision)
    assert engine.name == "cpu" and engine.fallbacks[-1] == "onnxruntime: onnxruntime is not installed"
    assert path.is_file()


def _graph_that_fails_to_run(path: Path) -> Path:
    """A graph ONNX Runtime loads and fails on at run time (a Reshape its input does not fit)."""
    import onnx
    from onnx import TensorProto, helper

    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, *SIZE])
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, None)
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [7, -1])
    graph = helper.make_graph([helper.make_node("Reshape", ["images", "shape"], ["features"])], "g",
                              [images], [features], [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(path))
    return path


def test_a_graph_that_fails_to_run_is_named_and_falls_back(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONNX Runtime's own Fail went through create_engine (the check of a new export runs the graph)
    # and through callers that catch LocusError.
    import locus_core.runtime.export as export

    engine = OnnxEngine(model, _graph_that_fails_to_run(tmp_path / "fails.onnx"))
    with pytest.raises(EngineError, match=r"fails.onnx: ONNX Runtime failed running it \(\[ONNXRuntimeError\]"):
        engine(_images())
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(export, "export_onnx", lambda model, path, **kwargs: _graph_that_fails_to_run(path))
    engine = create_engine(model, "onnxruntime")
    assert engine.name == "cpu" and "ONNX Runtime failed running it" in engine.fallbacks[0]
    assert not list((tmp_path / "cache" / "onnx").iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_engine_matches_cpu_and_leaves_the_model_where_it_was(model: LocusModel) -> None:
    engine = create_engine(model, "cuda")
    assert engine.device.type == "cuda" and model.device.type == "cpu"
    with torch.inference_mode():
        assert parity(model(_images()), engine(_images()).cpu()) >= 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_tensorrt_engine_is_cached_and_matches(model: LocusModel) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    engine = TensorRTEngine(model)
    assert engine.engine_path.is_file()
    again = TensorRTEngine(model)  # loads the cached engine: same key
    with torch.inference_mode():
        assert parity(model.cpu()(_images()), again(_images()).cpu()) >= 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_tensorrt_engine_of_another_gpu_or_version_is_rebuilt(model: LocusModel) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    engine = TensorRTEngine(model)
    engine.engine_path.with_suffix(".key").write_text("built for another GPU")
    before = engine.engine_path.stat().st_mtime_ns
    again = TensorRTEngine(model)
    assert again.engine_path.stat().st_mtime_ns != before and again.engine_path.with_suffix(".key").read_text() == again.key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_tensorrt_export_is_parity_checked(model: LocusModel, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    path, score = export_model(model, tmp_path / "m.engine", "tensorrt")
    assert path.is_file() and path.with_suffix(".key").is_file() and score >= 0.99


def test_bf16_engine_keeps_the_contract(model: LocusModel) -> None:
    from locus_core.runtime.engines import bf16_unavailable

    if why := bf16_unavailable(torch.device("cpu")):
        pytest.skip(why)
    engine = create_engine(model, "cpu", precision="bf16")
    assert engine.name == "cpu-bf16" and engine.fallbacks == []
    with torch.inference_mode():
        out = engine(_images())
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.norm(dim=2), torch.ones_like(out[:, :, 0]))
        assert parity(model(_images()), out) > 0.99


def test_bf16_without_bf16_units_falls_back_to_fp32(model: LocusModel, monkeypatch: pytest.MonkeyPatch) -> None:
    import locus_core.runtime.engines as engines

    monkeypatch.setattr(engines, "cpu_flags", lambda: {"avx2"})
    engine = create_engine(model, "cpu", precision="bf16")
    assert engine.name == "cpu"
    assert engine.fallbacks == ["cpu-bf16: bf16: this CPU has no AMX-BF16 or AVX512-BF16 units"]


def test_unknown_precision_is_named(model: LocusModel) -> None:
    with pytest.raises(EngineError, match="precision: unknown 'fp8'; valid: fp32, bf16, int8"):
        create_engine(model, "cpu", precision="fp8")


def test_int8_engine_keeps_the_contract_and_is_cached(model: LocusModel) -> None:
    engine = create_engine(model, "onnxruntime", precision="int8")
    assert engine.name == "onnxruntime-int8" and engine.fallbacks == []
    assert engine.path == cached_int8_onnx(model) and engine.path.stem.endswith("-int8")
    with torch.inference_mode():
        out = engine(_images())
        torch.testing.assert_close(out.norm(dim=2), torch.ones_like(out[:, :, 0]))
        assert parity(model(_images()), out) > 0.98
    assert create_engine(model, "cpu", precision="int8").name == "cpu"  # eager PyTorch has no int8 path


def test_int8_features_of_a_frame_do_not_depend_on_its_batch(model: LocusModel) -> None:
    # Dynamic quantisation scales activations by the whole input tensor's range: in a batch, a frame's
    # features depended on the other frames (max difference 0.016 on the default model in a batch of 8).
    engine = create_engine(model, "onnxruntime", precision="int8")
    images = _images(4)
    images[2:] *= 0.2  # darker frames: another activation range
    with torch.inference_mode():
        single = torch.cat([engine(frame[None]) for frame in images])
        torch.testing.assert_close(engine(images), single, rtol=0, atol=0)


def test_int8_quantisation_failure_falls_back_to_fp32(
    model: LocusModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import onnxruntime.quantization as quantization

    def broken(*args: object, **kwargs: object) -> None:
        raise Exception("unsupported node\nmore detail")

    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))  # no int8 graph cached yet
    monkeypatch.setattr(quantization, "quantize_dynamic", broken)
    engine = create_engine(model, "onnxruntime", precision="int8")
    assert engine.name == "onnxruntime"
    assert engine.fallbacks == [f"onnxruntime-int8: {cached_onnx(model)}: int8 quantisation failed (unsupported node)"]
    assert not list((tmp_path / "onnx").glob("*int8*"))  # nothing half-written left in the cache


def test_int8_graph_that_departs_from_fp32_is_not_used(
    model: LocusModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import locus_core.runtime.export as export

    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    cached_onnx(model)  # the fp32 graph passed its own check before int8 is tried
    monkeypatch.setattr(export, "parity", lambda reference, candidate: 0.5)
    engine = create_engine(model, "onnxruntime", precision="int8")
    assert engine.name == "onnxruntime"
    assert "its int8 graph departs from fp32 (smallest per-patch cosine 0.5000 < 0.98); not used" in engine.fallbacks[0]
    assert not list((tmp_path / "onnx").glob("*int8*"))


def test_a_tensorrt_engine_that_cannot_be_written_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk as a built engine is written (no TensorRT here: a stand-in builder): its cut-short
    temporary was left in the cache, beside the engine built earlier."""
    from unittest import mock

    engine = TensorRTEngine.__new__(TensorRTEngine)
    torch.nn.Module.__init__(engine)
    trt = mock.MagicMock(__version__="10.0.0")
    trt.Builder.return_value.build_serialized_network.return_value = b"a new engine"
    engine._trt, engine.engine_path, engine.input_size, engine.key = trt, tmp_path / "m.engine", (64, 80), "k"
    (tmp_path / "m.engine").write_bytes(b"built earlier")
    (tmp_path / "m.onnx").write_bytes(b"a graph")
    write_bytes = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        write_bytes(self, data[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        engine._build(tmp_path / "m.onnx", logger=None, fp16=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.onnx"]
    assert (tmp_path / "m.engine").read_bytes() == b"built earlier"


def test_an_int8_graph_whose_check_fails_leaves_no_temporary(
    model: LocusModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Any error while the quantised graph was checked (here: a broken fp32 engine) left it in the cache
    import locus_core.runtime.export as export
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    cached_onnx(model)

    def broken(reference: torch.Tensor, candidate: torch.Tensor) -> float:
        raise RuntimeError("onnxruntime session died")

    monkeypatch.setattr(export, "parity", broken)
    with pytest.raises(RuntimeError, match="session died"):
        cached_int8_onnx(model)
    assert not list((tmp_path / "onnx").glob("*int8*"))


def test_a_tensorrt_engine_that_disagrees_with_pytorch_removes_itself(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check a freshly built engine runs (no GPU here: the engine's own parts are stand-ins).
    An FP16 overflow gives NaN features: the engine file goes, and create_engine falls back."""
    engine = TensorRTEngine.__new__(TensorRTEngine)
    torch.nn.Module.__init__(engine)
    engine.engine_path, engine.fp16, engine.parity = tmp_path / "m.engine", True, None
    monkeypatch.setattr(TensorRTEngine, "device", property(lambda self: torch.device("cpu")))
    for name in ("m.engine", "m.key"):
        (tmp_path / name).write_text("built")
    monkeypatch.setattr(TensorRTEngine, "forward", lambda self, images: model(images) * float("nan"))
    with pytest.raises(ExportError, match=r"TensorRT engine .*m.engine disagrees with PyTorch .* -1.0000 < 0.99\)"):
        engine.check(model)
    assert not list(tmp_path.iterdir()) and engine.parity is None
    for name in ("m.engine", "m.key"):
        (tmp_path / name).write_text("built")
    monkeypatch.setattr(TensorRTEngine, "forward", lambda self, images: model(images))
    assert engine.check(model) == pytest.approx(1.0) and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("readable_after_a_build", [True, False, "the build fails"])
def test_a_cached_tensorrt_engine_that_cannot_be_read_is_built_again(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readable_after_a_build: bool | str
) -> None:
    """A damaged cached engine (no TensorRT or GPU here: stand-ins) failed every start until removed
    by hand: it is built again, once; an engine that even then cannot be read leaves the cache."""
    import sys
    from unittest import mock

    trt = mock.MagicMock(__version__="10.0.0")
    engine = mock.MagicMock(num_io_tensors=2)
    engine.get_tensor_name.side_effect = ["images", "features"].__getitem__
    engine.get_tensor_mode.side_effect = lambda name: trt.TensorIOMode.INPUT if name == "images" else trt.TensorIOMode.OUTPUT
    trt.Runtime.return_value.deserialize_cuda_engine.side_effect = [None, engine if readable_after_a_build else None]
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Stream", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(name="GPU", major=9, minor=0))
    builds = []

    def build(self: TensorRTEngine, onnx_path: Path, logger: object, fp16: bool) -> None:
        builds.append(onnx_path)
        if readable_after_a_build == "the build fails":
            raise ExportError("TensorRT cannot parse the ONNX graph")
        self.engine_path.write_bytes(b"rebuilt")
        self.engine_path.with_suffix(".key").write_text(self.key)

    monkeypatch.setattr(TensorRTEngine, "_build", build)
    monkeypatch.setattr(TensorRTEngine, "check", lambda self, model: 1.0)
    path = tmp_path / "m.engine"
    path.write_bytes(b"damaged")
    path.with_suffix(".key").write_text(engine_key(model, "10.0.0", tuple(model.input_size), True))
    if readable_after_a_build == "the build fails":  # the unreadable engine is not tried again at the next start
        with pytest.raises(ExportError, match="cannot parse"):
            TensorRTEngine(model, tmp_path / "m.onnx", engine_path=path)
        assert len(builds) == 1 and not list(tmp_path.iterdir())
    elif readable_after_a_build:
        assert TensorRTEngine(model, tmp_path / "m.onnx", engine_path=path).engine is engine
        assert builds == [tmp_path / "m.onnx"] and path.read_bytes() == b"rebuilt"
    else:
        with pytest.raises(EngineError, match="m.engine: TensorRT could not deserialize the engine"):
            TensorRTEngine(model, tmp_path / "m.onnx", engine_path=path)
        assert len(builds) == 1 and not list(tmp_path.iterdir())
