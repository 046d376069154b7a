"""ens auto's pure parts: the plan within a budget, durations, and the views verdicts on arrays."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble import metrics, tasks
from ensemble.config import AutoSettings, parse_duration
from ensemble.errors import EnsError
from ensemble.workflows.auto.plan import Epochs, Shape, Speed, Started, experiment_seconds, plan_portfolio
from ensemble.workflows.auto.portfolio import Candidate, other_size, portfolio
from ensemble.workflows.auto.views import Verdict, Views, augment_of, families_of, judge, recorded_augment, train_transform

SHAPE = Shape(n_train=1000, n_test=500, k=5)


def candidate(name: str, value: float = 1.0, model: str | None = None) -> Candidate:
    return Candidate(name, model or name, 32, value, f"{name} adds something")


def speeds_for(*pairs) -> dict[str, Speed]:
    """(name, train images/s) -> speeds; predicting is 10x faster, 1 s of setup a fold."""
    return {f"{name}@32": Speed(rate, 10 * rate, 1.0) for name, rate in pairs}


CANDIDATES = [candidate("base", 1.0), candidate("slow", 0.9), candidate("cheap", 0.5), candidate("pricey", 0.8)]
SPEEDS = speeds_for(("base", 1000), ("slow", 100), ("cheap", 2000), ("pricey", 250))


@pytest.mark.parametrize("seconds_left", [60, 200, 600, 3600])
def test_plan_fits_the_budget_and_keeps_the_reserve(seconds_left):
    plan = plan_portfolio(CANDIDATES, SPEEDS, SHAPE, seconds_left, reserve_seconds=0.12 * seconds_left)
    assert plan.estimated_seconds <= seconds_left * 0.88 + 1e-6
    for planned in plan.experiments:
        assert planned.seconds == pytest.approx(experiment_seconds(SPEEDS[planned.candidate.speed_key], SHAPE, planned.epochs))
    assert {planned.candidate.name for planned in plan.experiments} | {name for name, _ in plan.dropped} == {c.name for c in CANDIDATES}


def test_an_experiment_that_cannot_finish_is_not_started():
    plan = plan_portfolio(CANDIDATES, SPEEDS, SHAPE, 200, reserve_seconds=20)
    names = [planned.candidate.name for planned in plan.experiments]
    assert "slow" not in names  # 5 folds x 10 epochs at 100 img/s: far more than 180 s
    assert any(name == "slow" and "needs" in reason for name, reason in plan.dropped)


def test_the_base_goes_first_then_by_value_per_second():
    plan = plan_portfolio(CANDIDATES, SPEEDS, SHAPE, 10_000, reserve_seconds=100, epochs=Epochs(10, 3, 10))
    names = [planned.candidate.name for planned in plan.experiments]
    assert names == ["base", "cheap", "pricey", "slow"]  # cheap: 0.5 at 2000 img/s beats pricey: 0.8 at 250


def test_the_first_experiment_gets_fewer_epochs_rather_than_none():
    plan = plan_portfolio([candidate("base")], speeds_for(("base", 1000)), SHAPE, 40, reserve_seconds=5, epochs=Epochs(10, 2, 30))
    assert len(plan.experiments) == 1 and 2 <= plan.experiments[0].epochs < 10
    nothing = plan_portfolio([candidate("base")], speeds_for(("base", 1000)), SHAPE, 10, reserve_seconds=5)
    assert nothing.experiments == () and nothing.notes


def test_time_left_over_raises_epochs_up_to_the_maximum():
    plan = plan_portfolio([candidate("base")], speeds_for(("base", 1000)), SHAPE, 10_000, reserve_seconds=100, epochs=Epochs(10, 3, 30))
    assert plan.experiments[0].epochs == 30


def test_stretching_keeps_part_of_the_time_left_over_for_estimates_that_run_short():
    from ensemble.workflows.auto.plan import STRETCH_SHARE

    speeds = speeds_for(("base", 1000))
    at_ten = experiment_seconds(speeds["base@32"], SHAPE, 10)
    plan = plan_portfolio([candidate("base")], speeds, SHAPE, 2 * at_ten + 10, reserve_seconds=10, epochs=Epochs(10, 3, 30))
    spare = 2 * at_ten - plan.estimated_seconds  # the whole budget would give about 20 epochs
    assert 10 < plan.experiments[0].epochs < 20
    assert spare >= (1 - STRETCH_SHARE) * at_ten * 0.9


def test_started_experiments_keep_their_epochs_and_count_only_their_folds_left():
    started = {"slow": Started(epochs=4, folds_left=1)}
    plan = plan_portfolio(CANDIDATES, SPEEDS, SHAPE, 300, reserve_seconds=30, started=started)
    slow = next(planned for planned in plan.experiments if planned.candidate.name == "slow")
    assert slow.epochs == 4 and slow.seconds == pytest.approx(experiment_seconds(SPEEDS["slow@32"], SHAPE, 4, folds=1))
    assert [planned.candidate.name for planned in plan.experiments][:2] == ["base", "slow"]


def test_measured_slowness_scales_every_estimate():
    fast = plan_portfolio(CANDIDATES, SPEEDS, SHAPE, 300, reserve_seconds=30)
    slow = plan_portfolio(CANDIDATES, SPEEDS, SHAPE, 300, reserve_seconds=30, scale=3.0)
    assert slow.estimated_seconds <= 270 and len(slow.experiments) <= len(fast.experiments)


def test_the_plan_is_deterministic():
    plans = [plan_portfolio(CANDIDATES, SPEEDS, SHAPE, 500, reserve_seconds=60) for _ in range(3)]
    assert plans[0] == plans[1] == plans[2]


def test_portfolio_is_diverse_and_starts_with_the_base():
    candidates = portfolio(64)
    assert candidates[0].model == "resnet10t"
    assert len({c.model for c in candidates}) >= 4 and len({c.size for c in candidates}) == 2 and len({c.seed for c in candidates}) == 2
    assert other_size(64) == 48 and other_size(56) == 64 and other_size(32) == 64 and other_size(96) == 72
    assert [c.model for c in portfolio(32, ["test_resnet", "test_efficientnet"])] == ["test_resnet", "test_efficientnet"]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("1.5m", 90), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"time_limit": "soon"}, "cannot read 'soon'"),
        ({"time_limit": "-5m"}, "expected a duration"),
        ({"reserve": 0.95}, "auto reserve"),
        ({"min_epochs": 5, "epochs": 3}, "min_epochs <= epochs"),
    ],
)
def test_auto_settings_refused(settings, match):
    with pytest.raises(EnsError, match=match):
        AutoSettings(**settings)


def view_logits(n: int = 400, seed: int = 0):
    """A 2-class problem where the identity and hflip views are right 90% of the time and vflip
    swaps the classes (as a flip swaps 'up' and 'down'); rot90's three turns are near chance."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n)
    right = np.where(rng.random(n) < 0.9, targets, 1 - targets)
    def logits(labels):
        return np.eye(2, dtype=np.float32)[labels] * 3
    hflip = np.where(rng.random(n) < 0.97, right, 1 - right)
    views = [logits(right), logits(hflip), logits(1 - right)] + [logits(rng.integers(0, 2, n)) for _ in range(3)]
    return ["identity", "hflip", "vflip", "rot90", "rot180", "rot270"], np.stack(views), targets


def test_a_view_that_changes_labels_is_found_and_one_that_keeps_them_is_kept():
    names, oof, targets = view_logits()
    verdicts = {v.family: v for v in judge(names, oof, targets, tasks.get("single_label"), metrics.get("accuracy"), ["hflip", "vflip", "rot90"])}
    assert verdicts["hflip"].keeps and not verdicts["vflip"].keeps and not verdicts["rot90"].keeps
    assert "changes them" in verdicts["vflip"].line() and "keeps labels" in verdicts["hflip"].line()


def test_views_on_a_metric_where_lower_is_better():
    rng = np.random.default_rng(1)
    targets = rng.normal(5, 2, 300)
    good = (targets + rng.normal(0, 0.3, 300))[:, None].astype(np.float32)
    bad = rng.permutation(good[:, 0])[:, None]
    oof = np.stack([good, good + rng.normal(0, 0.05, good.shape).astype(np.float32), bad])
    verdicts = judge(["identity", "hflip", "vflip"], oof, targets, tasks.get("regression"), metrics.get("rmse"), ["hflip", "vflip"])
    assert [v.keeps for v in verdicts] == [True, False]


def test_shifts_and_zooms_are_judged_as_one_family_and_augment_without_joining_tta():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 2, 400)
    right = np.where(rng.random(400) < 0.9, targets, 1 - targets)
    views = [np.eye(2, dtype=np.float32)[right] * 3 for _ in range(6)]
    views[2] = np.eye(2, dtype=np.float32)[1 - right] * 3  # one of the four shifts swaps the classes
    names = ["identity", "hflip", "shift:0.1:right", "shift:0.1:left", "shift:0.1:down", "shift:0.1:up", "scale:0.8"]
    oof = np.stack(views[:2] + views[2:] + [views[0]])
    verdicts = judge(names, oof, targets, tasks.get("single_label"), metrics.get("accuracy"), ["hflip", "shift:0.1", "scale:0.8"])
    assert [v.keeps for v in verdicts] == [True, False, True]  # a family keeps labels only if every shift does
    found = Views(tuple(verdicts), "auto-base", 1.0)
    assert (found.spec, found.augment, found.tta) == ("hflip,scale:0.8", "hflip,scale:1-1.25", "hflip")
    zoom_only = Views((Verdict("scale:0.8", True, 0.9, 0.9, 0.5, "within noise"),), "auto-base", 1.0)
    assert (zoom_only.augment, zoom_only.tta) == ("scale:1-1.25", "none")


def test_each_view_family_trains_as_the_transform_that_does_what_the_view_did():
    # The view scale:F resizes the content by F; the train-time scale crops a side and stretches it.
    assert train_transform("scale:0.8") == "scale:1-1.25" and train_transform("scale:1.25") == "scale:0.8-1"
    assert augment_of(["d4", "hflip", "shift:0.1"]) == "hflip,rot90,shift:0.1" and augment_of([]) == "none"
    assert families_of("hflip, shift: 0.10,hflip,none") == ["hflip", "shift:0.1"] and families_of("none") == []
    with pytest.raises(EnsError, match=r"\[auto\] views 'scale:0.8,scale:0.9': scale is listed at two strengths"):
        families_of("scale:0.8,scale:0.9")
    # A record written before views had an augment key trains with its safe families' counterparts (d4 is no transform).
    assert recorded_augment({"safe": ["d4"], "spec": "d4"}) == "hflip,rot90" and recorded_augment(None) == "none"
    assert recorded_augment({"safe": ["hflip"], "spec": "hflip", "augment": "hflip"}) == "hflip"


def test_the_zoom_a_view_check_passed_is_the_zoom_training_applies():
    import torch

    from ensemble.inference import tta
    from ensemble.training.augment import Augment

    square = torch.zeros(1, 3, 40, 40, dtype=torch.uint8)
    square[..., 10:30, 10:30] = 255  # a 20 px square
    viewed = tta.parse_policy("scale:0.8").views[1].apply(square.float())
    far_end = train_transform("scale:0.8").partition(":")[2].split("-")[1]  # the crop side farthest from 1: the view's own zoom
    trained = Augment(f"scale:{far_end}-{far_end}", fill="black")(square, torch.Generator().manual_seed(0))

    def width(image):
        return int((image[0, 0, 20] > 127).sum())

    assert width(viewed) == 16 and abs(width(trained) - 16) <= 1


def test_no_view_is_used_when_the_first_model_is_near_chance():
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 2, 100)
    oof = np.stack([np.eye(2, dtype=np.float32)[rng.integers(0, 2, 100)] for _ in range(2)])
    verdict = judge(["identity", "hflip"], oof, targets, tasks.get("single_label"), metrics.get("accuracy"), ["hflip"])[0]
    assert not verdict.keeps and "not used" in verdict.line()


def test_a_candidate_that_learns_almost_nothing_is_abandoned_after_its_first_fold():
    from types import SimpleNamespace

    from ensemble.workflows.auto.run import ABANDON_SHARE, learns_too_little

    record = {
        "experiments": {"base": {"experiment": "auto-base", "status": "done", "oof_score": 0.85}, "atto": {"status": "running"}},
        "views": {"metric": "accuracy", "verdicts": [{"chance": 0.10}]},
    }
    run = SimpleNamespace(record=record)
    atto = SimpleNamespace(name="atto")
    # 0.15 keeps 7% of the base's 0.75 above chance: abandoned, and the reason names both.
    why = learns_too_little(run, atto, SimpleNamespace(fold_scores=[0.15, None, None]))
    assert why == f"accuracy 0.1500 keeps 7% of auto-base's skill above chance (0.8500, chance 0.1000; below {ABANDON_SHARE:.0%})"
    assert learns_too_little(run, atto, SimpleNamespace(fold_scores=[0.70, None, None])) is None  # 80% of the skill
    # Without a finished experiment, or before the views check measured chance, nothing is abandoned.
    assert learns_too_little(SimpleNamespace(record={**record, "views": None}), atto, SimpleNamespace(fold_scores=[0.15])) is None
    alone = {**record, "experiments": {"atto": {"status": "running"}}}
    assert learns_too_little(SimpleNamespace(record=alone), atto, SimpleNamespace(fold_scores=[0.15])) is None
    # A metric where lower is better: rmse 0.95 against chance 1.0 and the base's 0.2.
    lower = {**record, "experiments": {"base": {"experiment": "auto-base", "status": "done", "oof_score": 0.2}}, "views": {"metric": "rmse", "verdicts": [{"chance": 1.0}]}}
    assert "keeps 6%" in learns_too_little(SimpleNamespace(record=lower), atto, SimpleNamespace(fold_scores=[0.95]))


def test_a_frozen_features_experiment_pays_for_its_features_once():
    frozen = Speed(1e6, 50.0, 0.5, features_once=True)  # features at 50 img/s, a head of a million rows a second
    features = (SHAPE.n_train + SHAPE.n_test) / 50.0
    assert experiment_seconds(frozen, SHAPE, 10) == pytest.approx(features + 5 * (0.5 + 10 * 800 / 1e6))
    ordinary = Speed(1e6, 50.0, 0.5)  # the same rates, predicting each fold's held-out and test images
    assert experiment_seconds(ordinary, SHAPE, 10) > experiment_seconds(frozen, SHAPE, 10) + 60
    speeds = {"base@32": Speed(1000, 10_000, 1.0), "lite@224+pretrained+frozen": frozen}
    candidates = [candidate("base"), Candidate("lite-frozen224", "lite", 224, 1.3, "features", pretrained="w.pth", frozen=True)]
    slow = plan_portfolio(candidates, speeds, SHAPE, 600, reserve_seconds=60, scale=2.0)
    planned = next(p for p in slow.experiments if p.candidate.frozen)
    assert planned.seconds == pytest.approx(2 * features + 5 * (1.0 + planned.epochs * 800 * 2 / 1e6))  # the measured scale keeps it frozen


def test_each_weights_file_brings_frozen_features_top_stages_on_them_and_a_fine_tuned_one(tmp_path):
    from ensemble.config import TrainSettings
    from ensemble.workflows.auto.probe import candidate_settings

    (tmp_path / "efficientnet_lite0.pth").write_bytes(b"")
    candidates = portfolio(64, ["resnet10t"], tmp_path)
    names = ["resnet10t-64", "efficientnet_lite0-frozen288", "efficientnet_lite0-top1-224", "efficientnet_lite0-top2-224", "efficientnet_lite0-pre96"]
    assert [c.name for c in candidates] == names
    frozen, cheap, top, tuned = candidates[1:]
    assert frozen.frozen and frozen.speed_key == "efficientnet_lite0@288+pretrained+frozen" and top.value > cheap.value > frozen.value > tuned.value
    assert top.frozen and top.speed_key == "efficientnet_lite0@224+pretrained+frozen+top2" and cheap.speed_key.endswith("+top1")
    base = TrainSettings(train_blocks=3)  # ens.toml's: the fine-tuned candidates' (frozen features ignore it, as they always did)
    settings = candidate_settings(base, frozen, 10, augment="hflip", tta="hflip")
    assert settings.frozen_features and settings.augment == "none" and settings.tta == "none"  # features of the plain images
    assert settings.top_blocks == 0 and settings.train_blocks == 3  # a linear head, recorded as before top_blocks existed
    assert candidate_settings(base, top, 10).top_blocks == 2
    tuned_settings = candidate_settings(base, tuned, 10, augment="hflip")
    assert tuned_settings.augment == "hflip" and tuned_settings.train_blocks == 3 and tuned_settings.top_blocks == 0


def test_a_frozen_experiment_done_or_with_its_features_made_is_not_charged_for_them_again():
    frozen = Speed(1e6, 50.0, 0.5, features_once=True)
    speeds = {"base@32": Speed(1000, 10_000, 1.0), "lite@224+pretrained+frozen": frozen}
    candidates = [candidate("base"), Candidate("lite-frozen224", "lite", 224, 1.3, "features", pretrained="w.pth", frozen=True)]
    done = plan_portfolio(candidates, speeds, SHAPE, 600, reserve_seconds=60, started={"lite-frozen224": Started(10, 0)})
    assert next(p for p in done.experiments if p.candidate.frozen).seconds == 0
    made = plan_portfolio(candidates, speeds, SHAPE, 600, reserve_seconds=60, started={"lite-frozen224": Started(10, 2, features_made=True)})
    assert next(p for p in made.experiments if p.candidate.frozen).seconds == pytest.approx(2 * (0.5 + 10 * 800 / 1e6))


def test_the_first_experiment_gives_up_epochs_for_a_candidate_worth_more_a_second():
    frozen = Speed(1e6, 50.0, 0.5, features_once=True)  # about 33 s in all
    speeds = {"base@32": Speed(50, 500, 1.0), "lite@224+pretrained+frozen": frozen}
    candidates = [candidate("base"), Candidate("lite-frozen224", "lite", 224, 1.3, "features", pretrained="w.pth", frozen=True)]
    base_cost = experiment_seconds(speeds["base@32"], SHAPE, 10)
    plan = plan_portfolio(candidates, speeds, SHAPE, base_cost + 20 + 30, reserve_seconds=30)  # the base at 10 epochs leaves 20 s
    names = [planned.candidate.name for planned in plan.experiments]
    assert names == ["base", "lite-frozen224"]
    assert 3 <= plan.experiments[0].epochs < 10 and "leaving room for lite-frozen224" in plan.experiments[0].reason
    roomy = plan_portfolio(candidates, speeds, SHAPE, base_cost + 200, reserve_seconds=30)
    assert roomy.experiments[0].epochs >= 10  # room enough: nothing given up


def test_room_is_made_with_a_margin_and_also_when_the_base_alone_does_not_fit():
    frozen = Speed(1e6, 50.0, 0.5, features_once=True)
    speeds = {"base@32": Speed(50, 500, 1.0), "lite@224+pretrained+frozen": frozen}
    candidates = [candidate("base"), Candidate("lite-frozen224", "lite", 224, 1.3, "features", pretrained="w.pth", frozen=True)]
    needed = experiment_seconds(frozen, SHAPE, 10)
    base_cost = experiment_seconds(speeds["base@32"], SHAPE, 10)
    for usable in (base_cost + 20, 0.7 * base_cost):  # room short of the frozen one's; the base alone too long
        plan = plan_portfolio(candidates, speeds, SHAPE, usable + 30, reserve_seconds=30)
        assert [p.candidate.name for p in plan.experiments] == ["base", "lite-frozen224"], usable
        left = usable - sum(p.seconds for p in plan.experiments)
        assert left >= 0.1 * needed  # a base that runs a few percent over still leaves it room
        assert 1.1 * plan.experiments[0].seconds + needed <= usable  # even 10% over


def test_only_the_very_first_experiment_is_squeezed_to_fewer_epochs():
    speeds = speeds_for(("base", 1000), ("slow", 100))
    candidates = [candidate("base"), candidate("slow", 0.9)]
    slow_at_low = experiment_seconds(speeds["slow@32"], SHAPE, 3)
    plan = plan_portfolio(candidates, speeds, SHAPE, slow_at_low + 40, reserve_seconds=30, epochs=Epochs(10, 3, 30), started={"base": Started(10, 0)})
    assert [p.candidate.name for p in plan.experiments] == ["base"] and plan.dropped[0][0] == "slow"


def test_a_later_experiment_gives_up_a_few_epochs_with_a_margin_rather_than_its_place():
    from ensemble.workflows.auto.plan import TRIM_MARGIN

    speeds = speeds_for(("base", 1000), ("slow", 100))
    candidates = [candidate("base"), candidate("slow", 0.9)]
    at_ten = experiment_seconds(speeds["slow@32"], SHAPE, 10)
    done = {"base": Started(10, 0)}
    plan = plan_portfolio(candidates, speeds, SHAPE, 0.97 * at_ten + 30, reserve_seconds=30, epochs=Epochs(10, 3, 30), started=done)
    slow = plan.experiments[1]
    assert slow.candidate.name == "slow" and 6 <= slow.epochs < 10 and "as many as fit with a margin" in slow.reason
    assert slow.seconds <= TRIM_MARGIN * 0.97 * at_ten  # a few percent over still finishes
    # In a fresh plan neither the base's stretch nor a cheap candidate takes the margin: once the
    # base has run as estimated, the re-plan gives the trimmed one the same epochs.
    cheap = [*candidates, candidate("cheap", 1e-4)]  # fast, but worth less a second than slow: planned after it
    speeds["cheap@32"] = Speed(5000, 50000, 0.1)
    base_at_ten = experiment_seconds(speeds["base@32"], SHAPE, 10)
    for share in (0.97, 0.75):
        fresh = plan_portfolio(cheap, speeds, SHAPE, base_at_ten + share * at_ten + 30, reserve_seconds=30, epochs=Epochs(10, 3, 30))
        planned = {p.candidate.name: p for p in fresh.experiments}
        assert 6 <= planned["slow"].epochs < 10, share
        margin = (1 - TRIM_MARGIN) * share * at_ten
        assert fresh.estimated_seconds + margin <= base_at_ten + share * at_ten + 1e-6, share  # the margin is left unplanned
        after = plan_portfolio(cheap, speeds, SHAPE, fresh.seconds_left - planned["base"].seconds, reserve_seconds=30, epochs=Epochs(10, 3, 30),
                               started={"base": Started(planned["base"].epochs, 0)})
        assert {p.candidate.name: p.epochs for p in after.experiments}["slow"] == planned["slow"].epochs, share
    # Not below TRIM_FLOOR of the default epochs: then it is left out, as before.
    short = plan_portfolio(candidates, speeds, SHAPE, 0.5 * at_ten + 30, reserve_seconds=30, epochs=Epochs(10, 3, 30), started=done)
    assert [p.candidate.name for p in short.experiments] == ["base"] and short.dropped[0][0] == "slow"


def test_the_reserve_shrinks_to_the_blends_share_once_no_tta_member_can_be_made():
    from ensemble.workflows.auto.events import Clock
    from ensemble.workflows.auto.state import NO_TTA_SECONDS, NO_TTA_SHARE, AutoOptions, Run

    def reserve(views_setting: str, views, budget: float = 600.0, share: float = 0.12) -> float:
        run = Run(None, AutoOptions(AutoSettings(time_limit="10m", reserve=share, views=views_setting)), Clock(budget), None)
        run.record = {"views": views}
        return run.reserve

    assert reserve("hflip", None) == pytest.approx(72)  # not checked yet: TTA may come
    assert reserve("hflip", {"spec": "hflip", "tta": "hflip"}) == pytest.approx(72)
    assert reserve("hflip", {"spec": "none", "tta": "none"}) == pytest.approx(72 * NO_TTA_SHARE)  # no view keeps labels
    assert reserve("scale:0.8", {"spec": "scale:0.8", "tta": "none"}) == pytest.approx(72 * NO_TTA_SHARE)  # augments, no TTA view
    assert reserve("none", None) == pytest.approx(72 * NO_TTA_SHARE)  # no view is checked at all
    assert reserve("hflip", {"spec": "none"}) == pytest.approx(72 * NO_TTA_SHARE)  # a record from before "tta" was kept
    assert reserve("none", None, budget=180.0) == pytest.approx(NO_TTA_SECONDS)  # a short budget keeps the blends' seconds
    assert reserve("none", None, budget=180.0, share=0.05) == pytest.approx(9.0)  # never more than the reserve asked for


def test_top_stages_pay_for_their_oof_and_test_logits_a_linear_head_does_not():
    from ensemble.workflows.auto.plan import fold_seconds

    head = Speed(1000, 50, 1.0, features_once=True)
    top = Speed(1000, 50, 1.0, features_once=True, trained_stages=True, head_predict_rows_per_second=100)
    assert fold_seconds(top, SHAPE, 2) - fold_seconds(head, SHAPE, 2) == pytest.approx(500 / 100)  # the test set; OOF is the last epoch's


def test_a_frozen_members_tta_passes_over_the_test_set_once():
    from ensemble.workflows.auto.plan import tta_seconds

    frozen, ordinary = Speed(100, 50, 1.0, features_once=True), Speed(100, 50, 1.0)
    assert tta_seconds(frozen, SHAPE, 2) == pytest.approx((1000 + 500) * 2 / 50)  # the shared backbone, once per view
    assert tta_seconds(ordinary, SHAPE, 2) == pytest.approx((1000 + 5 * 500) * 2 / 50)  # every fold's network over the test set
    top = Speed(100, 50, 1.0, features_once=True, trained_stages=True)  # the folds trained their top stages: no shared backbone
    assert tta_seconds(top, SHAPE, 2) == tta_seconds(ordinary, SHAPE, 2)


def test_a_record_of_the_first_top_stages_candidates_reads_back():
    """One commit recorded the top stages of a candidate as train_blocks: it reads as top_blocks."""
    from ensemble.workflows.auto.record import candidates_of

    fields = {"name": "lite-top224", "model": "lite", "size": 224, "value": 1.25, "why": "top", "pretrained": "w.pth", "frozen": True, "train_blocks": 2}
    plain = {**fields, "name": "lite-frozen288", "train_blocks": -1}
    top, frozen = candidates_of({"candidates": [fields, plain]})
    assert top.top_blocks == 2 and top.speed_key.endswith("+top2") and frozen.top_blocks == 0
