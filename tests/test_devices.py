"""The CUDA choices, checked without a GPU by standing in for torch.cuda's answers."""

import pytest
import torch

from ensemble.errors import EnsError
from ensemble.nets import devices


@pytest.fixture
def fake_cuda(monkeypatch):
    def install(count=1, capability=(8, 0)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)

    return install


def test_cpu_runs_float32_without_scaler():
    cpu = torch.device("cpu")
    assert devices.amp_dtype(cpu) is None
    assert not devices.grad_scaler(cpu).is_enabled()
    assert devices.memory_format(cpu) is torch.channels_last  # measured faster on the CPU too


@pytest.mark.parametrize("capability, dtype", [((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((7, 5), torch.float16), ((7, 0), torch.float16)])
def test_bf16_only_on_cards_with_bf16_units(fake_cuda, capability, dtype):
    fake_cuda(capability=capability)
    assert devices.amp_dtype(torch.device("cuda", 0)) is dtype


def test_device_names(fake_cuda):
    fake_cuda(count=2)
    assert devices.resolve_device("cuda") == torch.device("cuda", 0)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve_device("auto").type == "cuda"
    with pytest.raises(EnsError, match="torch sees 2 CUDA device"):
        devices.resolve_device("cuda:2")


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(EnsError, match="no CUDA device; use --device cpu"):
        devices.resolve_device("cuda")


def test_an_empty_scaler_state_is_what_a_disabled_scaler_saves():
    # training/trainer.py loads a saved scaler state only when it is not empty: a fold begun on the
    # CPU or a bf16 card saves {}, which an enabled fp16 scaler would refuse to load.
    assert devices.grad_scaler(torch.device("cpu")).state_dict() == {}
