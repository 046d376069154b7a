"""Registry: the one place that knows a family's members; every family in the package behaves alike."""

from __future__ import annotations

import pytest

from ensemble import metrics
from ensemble.blend import METHODS
from ensemble.errors import EnsError
from ensemble.inference.tta import VIEWS
from ensemble.nets.attention import ATTENTION
from ensemble.registry import Registry
from ensemble.tasks import MERGES, TASKS, VALUE_MERGES
from ensemble.training.augment import TRANSFORMS
from ensemble.training.optim import OPTIMIZERS, SCHEDULES, TRAINABLE
from ensemble.training.recipe import CLASS_WEIGHTS

FAMILIES = [metrics.METRICS, METHODS, VIEWS, MERGES, VALUE_MERGES, TASKS, ATTENTION, TRANSFORMS, OPTIMIZERS, SCHEDULES, TRAINABLE, CLASS_WEIGHTS]


def small_registry() -> Registry:
    registry: Registry = Registry("colour")
    registry.register("red")(1)
    registry.register("blue")(2)
    return registry


def test_register_get_names_contains():
    registry = small_registry()
    assert registry.get("red") == 1 and registry.get("blue") == 2
    assert registry.names() == ["blue", "red"]  # sorted, whatever the order of registration
    assert "red" in registry and "green" not in registry


def test_register_returns_the_member_so_it_works_as_a_decorator():
    registry: Registry = Registry("function")

    @registry.register("double")
    def double(value):
        return 2 * value

    assert double(3) == 6 and registry.get("double") is double


def test_a_second_member_of_the_same_name_is_refused_and_the_first_kept():
    registry = small_registry()
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        registry.register("red")(3)
    assert registry.get("red") == 1


@pytest.mark.parametrize("name", ["green", "", "RED", "red "])
def test_an_unknown_name_is_one_error_listing_the_valid_ones(name):
    with pytest.raises(EnsError, match=rf"^unknown colour {name!r}; expected one of: blue, red$"):
        small_registry().get(name)


@pytest.mark.parametrize("registry", FAMILIES, ids=lambda registry: registry.family)
def test_every_family_lists_its_members_in_its_unknown_name_error(registry):
    assert registry.names(), registry.family
    with pytest.raises(EnsError) as caught:
        registry.get("no-such-member")
    message = str(caught.value)
    assert message.startswith(f"unknown {registry.family} 'no-such-member'")
    assert message.endswith(", ".join(registry.names()))
    for name in registry.names():
        assert registry.get(name) is not None
