import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from locus_core.models import LocusModel, ModelConfig
from locus_core.runtime.graph_cache import cached_onnx, code_digest, weights_digest


@pytest.fixture(scope="module")
def model() -> LocusModel:
    torch.manual_seed(0)
    return LocusModel(ModelConfig(backbone="test", input_size=(64, 80), radii=(0.2, 0.6))).eval()


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    yield


def test_cached_graph_is_keyed_by_all_weights_not_only_the_head(model: LocusModel) -> None:
    # A raw backbone's hash names only the backbone: random and trained weights must not share a graph.
    raw = LocusModel.from_backbone("test").eval()
    other = LocusModel.from_backbone("test").eval()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    assert raw.hash == other.hash
    assert weights_digest(raw) != weights_digest(other)
    assert weights_digest(model) == weights_digest(model)
    path = cached_onnx(model)
    assert weights_digest(model) in path.name and code_digest(model) in path.name and path == cached_onnx(model)


def test_cached_graph_is_keyed_by_the_code_of_the_models_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgrade that changes how a layer computes, with the same weights, must not reuse old graphs."""
    import importlib.util

    import locus_core.runtime.graph_cache as graph_cache

    source = tmp_path / "layers.py"

    def model_from(code: str) -> torch.nn.Module:
        source.write_text(code)
        spec = importlib.util.spec_from_file_location("layers", source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, "layers", module)
        return torch.nn.Sequential(torch.nn.Linear(2, 2), module.Layer())

    monkeypatch.setattr(graph_cache, "_PACKAGE", tmp_path)  # the layers "of this package"
    layer = "import torch\nclass Layer(torch.nn.Module):\n    def forward(self, x):\n        return x{}\n"
    first = code_digest(model_from(layer.format("")))
    assert code_digest(model_from(layer.format(""))) == first
    assert code_digest(model_from(layer.format(" * 2"))) != first
    monkeypatch.setattr(graph_cache, "_PACKAGE", tmp_path / "elsewhere")  # torch's own code is not hashed
    assert code_digest(model_from(layer.format(" * 3"))) == code_digest(torch.nn.Linear(2, 2))


def test_cached_graph_is_keyed_by_the_code_of_the_layers_base_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backbone.preprocess (in the graph) is in base.py, which no layer's own class comes from."""
    import importlib.util

    import locus_core.runtime.graph_cache as graph_cache

    def load(name: str, code: str) -> object:
        (tmp_path / f"{name}.py").write_text(code)
        spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    def model_from(base_forward: str) -> torch.nn.Module:
        load("base_layer", f"import torch\nclass Base(torch.nn.Module):\n    def forward(self, x):\n        return {base_forward}\n")
        return load("derived_layer", "from base_layer import Base\nclass Layer(Base):\n    pass\n").Layer()

    monkeypatch.setattr(graph_cache, "_PACKAGE", tmp_path)
    first = code_digest(model_from("x"))
    assert code_digest(model_from("x")) == first
    assert code_digest(model_from("x.mean(1, keepdim=True)")) != first


def test_cached_graph_is_keyed_by_the_code_that_exports_and_checks_it(
    model: LocusModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graphs, int8 graphs and TensorRT engines cached before a fix to the export, quantisation or
    check (NaN parity, TensorRT parity when built) were loaded, unchecked, by the fixed code."""
    import locus_core.runtime.graph_cache as graph_cache

    sources = [tmp_path / "graph_cache.py", tmp_path / "engines.py", tmp_path / "export.py"]
    for source in sources:
        source.write_text("old")
    monkeypatch.setattr(graph_cache, "_RUNTIME_SOURCES", tuple(sources))
    before = code_digest(model)
    assert code_digest(model) == before
    sources[1].write_text("fixed")
    assert code_digest(model) != before


def test_cached_graph_is_keyed_by_the_versions_of_other_packages_in_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """timm's ViT blocks are not our source: a timm upgrade must not reuse graphs exported with the old one."""
    import timm.layers

    import locus_core.runtime.graph_cache as graph_cache

    vit_part, plain = torch.nn.Sequential(timm.layers.Mlp(4)), torch.nn.Linear(2, 2)
    before = code_digest(vit_part), code_digest(plain)
    version = graph_cache.metadata.version
    monkeypatch.setattr(graph_cache.metadata, "version", lambda dist: "99.0" if dist == "timm" else version(dist))
    assert code_digest(vit_part) != before[0] and code_digest(plain) == before[1]
