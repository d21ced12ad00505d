import argparse
from pathlib import Path

import pytest
import torch

from locus_core.errors import torch_load_failure


def _failure(path: Path) -> str:
    with pytest.raises(Exception) as caught:
        torch.load(path, weights_only=True)
    return torch_load_failure(caught.value)


def test_a_weights_only_failure_is_the_unpicklers_reason_without_torchs_advice(tmp_path: Path) -> None:
    # a DINO training checkpoint holds its argparse arguments beside the weights
    torch.save({"teacher": {}, "args": argparse.Namespace(arch="vit_base")}, tmp_path / "full.pth")
    assert _failure(tmp_path / "full.pth") == ("Unsupported global: GLOBAL argparse.Namespace was not an allowed "
                                               "global by default")
    (tmp_path / "text.pt").write_text("garbage")
    reason = _failure(tmp_path / "text.pt")
    assert "weights_only" not in reason and "\n" not in reason and reason


def test_other_failures_are_their_first_sentence(tmp_path: Path) -> None:
    assert torch_load_failure(RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central "
                                           "directory")) == ("PytorchStreamReader failed reading zip archive: failed "
                                                             "finding central directory")
    assert torch_load_failure(OSError("")) == "corrupt"
    assert torch_load_failure(ValueError("first line. second sentence\nmore")) == "first line"
