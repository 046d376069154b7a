"""Pretrained weights from files the tests write: by name, in another codebase's names, refusals."""

import pickle
import warnings

import pytest
import torch
from safetensors.torch import save_file

from ensemble.errors import EnsError
from ensemble.nets.networks import backbone_of, create_net, load_weights
from ensemble.nets.weights import weights_identity


@pytest.fixture(scope="module")
def plain():
    """test_resnet as timm builds it, 1,000-class classifier included, with non-default weights."""
    import timm

    torch.manual_seed(1)
    model = timm.create_model("test_resnet", pretrained=False)
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.normal_(0, 0.3)
        if key.endswith("running_var"):
            tensor.abs_().add_(0.5)
    return model.eval()


def features_match(net, plain) -> None:
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(backbone_of(net).eval().forward_features(x), plain.forward_features(x), rtol=0, atol=0)


def other_codebase_names(state: dict) -> dict:
    """The same tensors, in the same order, under names timm does not use (as another library would)."""
    return {f"_module{index}.{key.rsplit('.', 1)[-1]}": tensor for index, (key, tensor) in enumerate(state.items())}


@pytest.mark.parametrize("fmt", ["torch", "safetensors", "torch-other-names", "torch-nested-no-classifier"])
@pytest.mark.parametrize("attention, in_blocks", [("none", False), ("se", False), ("cbam", True)])
def test_a_file_loads_and_gives_identical_features(tmp_path, plain, fmt, attention, in_blocks):
    state = {key: tensor.clone() for key, tensor in plain.state_dict().items()}
    path = tmp_path / "weights.bin"
    if fmt == "safetensors":
        save_file(state, path)
    elif fmt == "torch":
        torch.save(state, path)
    elif fmt == "torch-other-names":
        torch.save(other_codebase_names(state), path)
    else:
        torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("fc.")}}, path)
    net = create_net("test_resnet", 3, 16, attention, in_blocks)
    mapping = load_weights(net, "test_resnet", 16, str(path))
    assert mapping.how == ("by order and shape" if fmt == "torch-other-names" else "by name")
    classifier = {"fc.weight", "fc.bias"}
    if fmt == "torch-other-names":
        classifier = {key for key, old in zip(other_codebase_names(state), state) if old in classifier}
    assert set(mapping.dropped) == (set() if fmt == "torch-nested-no-classifier" else classifier)
    features_match(net, plain)
    assert backbone_of(net).get_classifier().weight.shape == (3, plain.num_features)  # a new classifier


def edited(state: dict, change: str) -> dict:
    state = dict(state)
    if change == "extra":
        state["layer9.conv.weight"] = torch.zeros(1)
    elif change == "shape":
        state["layer2.0.conv1.weight"] = torch.zeros(3, 3, 1, 1)
    elif change == "missing":
        del state["layer3.0.bn2.running_mean"]
    elif change == "other names, another net":
        state = other_codebase_names({k: v for k, v in state.items() if not k.startswith("layer4")})
    return state


@pytest.mark.parametrize(
    "change, message",
    [
        ("extra", "tensor 'layer9.conv.weight' is not in the timm model"),
        ("shape", r"tensor 'layer2.0.conv1.weight' has shape \(3, 3, 1, 1\), the model expects"),
        ("missing", "tensor 'layer3.0.bn2.running_mean' of the timm model is missing"),
        ("other names, another net", r"names differ from timm's and tensor \d+ '_module\d+.weight' .* does not line up with 'layer4"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_naming_its_key(tmp_path, plain, change, message):
    path = tmp_path / "weights.pt"
    torch.save(edited(plain.state_dict(), change), path)
    with pytest.raises(EnsError, match=message):
        load_weights(create_net("test_resnet", 3, 16, "se"), "test_resnet", 16, str(path))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not weights at all", r"cannot read weights: a text file \(it starts 'not weights at all'\); expected a state dict saved with torch.save"),
        (None, "file not found"),
        (b"", r"cannot read weights: the file is empty; expected a state dict"),
        (b"\x00\x01\x02\xff\xfe", r"cannot read weights: a binary file of unknown format; expected .* or a .safetensors file$"),
        (pickle.dumps({"w": [1.0, 2.0]}), r"cannot read weights: a Python pickle, not a torch or safetensors file"),
    ],
)
def test_unreadable_files_are_refused(tmp_path, content, message):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EnsError, match=f"--pretrained {path}: {message}"):
        load_weights(create_net("test_resnet", 3, 16), "test_resnet", 16, str(path))


def test_an_empty_file_is_refused_as_empty(tmp_path):
    """Issue 16, 11: torch's empty error message made splitlines()[0] an IndexError."""
    path = tmp_path / "weights.pt"
    path.write_bytes(b"")
    with pytest.raises(EnsError, match=f"--pretrained {path}: cannot read weights: the file is empty"):
        load_weights(create_net("test_resnet", 3, 16), "test_resnet", 16, str(path))


def offline_errors():
    from urllib.error import URLError

    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    return [
        LocalEntryNotFoundError(
            "An error happened while trying to locate the file on the Hub and we cannot find the requested files in the local cache."
        ),
        OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled."),
        URLError(OSError(-3, "Temporary failure in name resolution")),
        httpx2.ProxyError("407 Proxy Authentication Required"),
    ]


@pytest.mark.parametrize("offline", range(4))
def test_timm_weights_unreachable_is_one_line_naming_the_file_option(monkeypatch, offline):
    """Issue 16, 10: --pretrained timm offline ended in ~114 lines of huggingface_hub traceback."""
    import timm.models._builder

    def download(*args, **kwargs):
        raise offline_errors()[offline]

    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_hf", download)
    with pytest.raises(EnsError, match=r"--pretrained timm: cannot download test_resnet's weights \(.+\); .*--pretrained FILE") as error:
        load_weights(create_net("test_resnet", 3, 16), "test_resnet", 16, "timm")
    assert "\n" not in str(error.value)


def test_a_pickled_object_is_not_run(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv1.0.weight": torch.zeros(1), "code": print}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's pickle-protocol UserWarning must not leak
        with pytest.raises(EnsError, match=r"cannot read weights: a torch file holding Python objects besides tensors .*; expected a state dict"):
            load_weights(create_net("test_resnet", 3, 16), "test_resnet", 16, str(path))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_a_weights_problem(tmp_path, plain, value):
    state = {key: tensor.clone() for key, tensor in plain.state_dict().items()}
    state["layer1.0.conv1.weight"].view(-1)[3] = value
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    with pytest.raises(EnsError, match=f"--pretrained {path}: tensor 'layer1.0.conv1.weight' holds NaN or infinite values: the weights file is damaged"):
        load_weights(create_net("test_resnet", 3, 16), "test_resnet", 16, str(path))


def test_the_identity_is_the_content_not_the_path(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"same bytes")
    (tmp_path / "b.pt").write_bytes(b"same bytes")
    (tmp_path / "c.pt").write_bytes(b"other bytes")
    a, b, c = (weights_identity(str(tmp_path / name), "test_resnet") for name in ("a.pt", "b.pt", "c.pt"))
    assert a == b != c and a.startswith("sha256:")
    assert weights_identity("", "test_resnet") == "random"
    assert weights_identity("timm", "test_resnet") == "timm:test_resnet.r160_in1k"
