import pytest

from ensemble.errors import EnsError
from ensemble.nets.networks import check_input_size, create_net


def test_transformers_are_built_for_the_training_size():
    check_input_size("test_vit", 3, 32)  # timm's tiny ViT defaults to 160px
    assert create_net("test_vit", 3, 32).patch_embed.img_size == (32, 32)


def test_convolutional_nets_take_any_size():
    check_input_size("test_resnet", 5, 16)
    assert create_net("test_resnet", 5, 16).num_classes == 5


@pytest.mark.parametrize(
    "model, size, message",
    [
        ("test_convnext", 16, "cannot take 16x16 images"),
        ("resnet_nope", 32, "unknown timm model 'resnet_nope'"),
    ],
)
def test_unusable_models_are_refused(model, size, message):
    with pytest.raises(EnsError, match=message):
        check_input_size(model, 3, size)
