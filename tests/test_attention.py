"""Every attention block, on several timm families and sizes: shapes, identity start, gradients."""

import pytest
import torch
import torch.nn.functional as F

from ensemble.errors import EnsError
from ensemble.nets.attention import ATTENTION
from ensemble.nets.networks import HeadAttention, added_modules, backbone_of, create_net

BLOCKS = [name for name in ATTENTION.names() if name != "none"]
# (model, sizes): a ResNet, an EfficientNet and a ConvNeXt (which needs 32px and more).
FAMILIES = [("test_resnet", (16, 24)), ("test_efficientnet", (16, 32)), ("test_convnext", (32, 48))]


def set_batchnorm_weights(net) -> None:
    """Backbone BatchNorm weights at 1: timm zero-initialises each residual branch's last one."""
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d) and ".se." not in name:
            torch.nn.init.ones_(module.weight)


@pytest.mark.parametrize("model, sizes", FAMILIES)
@pytest.mark.parametrize("attention", ATTENTION.names())
def test_a_block_on_the_feature_map_keeps_its_shape_and_gives_logits(attention, model, sizes):
    torch.manual_seed(0)
    net = create_net(model, 5, sizes[0], attention).eval()
    for size in sizes:
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            if isinstance(net, HeadAttention):
                features = net.backbone.forward_features(x)
                assert net.attention(features).shape == features.shape
            assert net(x).shape == (2, 5)


@pytest.mark.parametrize("attention", BLOCKS)
def test_blocks_start_as_the_identity(attention):
    """Exact for the doubled-sigmoid gates; residual attention's mask starts at sigmoid(-6)."""
    block = ATTENTION.get(attention)(32).eval()
    x = torch.randn(2, 32, 5, 5)
    with torch.no_grad():
        change = float((block(x) - x).abs().max() / x.abs().max())
    assert change <= (0.0025 if attention == "residual" else 0.0)


@pytest.mark.parametrize("attention", BLOCKS)
def test_blocks_inside_residual_blocks_leave_a_trained_net_unchanged_at_the_start(attention):
    torch.manual_seed(0)
    plain = create_net("test_resnet", 3, 16).eval()
    set_batchnorm_weights(plain)  # a trained net's residual branches are not zero, as timm starts them
    with_blocks = create_net("test_resnet", 3, 16, attention, attention_in_blocks=True).eval()
    result = with_blocks.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".se." in key for key in result.missing_keys)
    assert len(added_modules(with_blocks)) == 4  # one per residual block of test_resnet
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(with_blocks(x), plain(x), rtol=0.02, atol=1e-5)


@pytest.mark.parametrize("attention", BLOCKS)
@pytest.mark.parametrize("in_blocks", [False, True])
def test_gradients_reach_the_block_and_the_classifier(attention, in_blocks):
    torch.manual_seed(0)
    net = create_net("test_resnet", 3, 16, attention, in_blocks).train()
    set_batchnorm_weights(net)  # else a block inside a residual branch that starts at zero gets no gradient
    loss = F.cross_entropy(net(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for name, block in added_modules(net):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters()), name
    assert backbone_of(net).get_classifier().weight.grad.abs().sum() > 0


def test_attention_in_blocks_names_the_families_that_can():
    with pytest.raises(EnsError, match=r"'test_efficientnet' .* families that do: ResNet/ResNeXt"):
        create_net("test_efficientnet", 3, 16, "se", attention_in_blocks=True)
