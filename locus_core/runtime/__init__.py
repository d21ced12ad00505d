"""Inference runtimes: export to ONNX/TorchScript/TensorRT and engines that run a model anywhere.

``create_engine(model, device="auto")`` returns an :class:`~locus_core.runtime.engines.InferenceEngine`
with the model's inference contract ((B,3,H,W) RGB in [0,1] → (B,S,D,h,w)), so the mapping,
evaluation and ROS code never care which runtime runs underneath. Exported graphs and TensorRT engines
are made once and cached per weights and code (``graph_cache``).
"""

from locus_core.runtime.engines import DEVICES, PRECISIONS, InferenceEngine, create_engine
from locus_core.runtime.errors import EngineError, ExportError, RuntimeUnavailable
from locus_core.runtime.export import export_model, parity

__all__ = [
    "DEVICES",
    "EngineError",
    "ExportError",
    "InferenceEngine",
    "PRECISIONS",
    "RuntimeUnavailable",
    "create_engine",
    "export_model",
    "parity",
]
