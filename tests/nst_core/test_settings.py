"""Settings: defaults, parsing of CSV/CLI strings, and errors that name the setting and the fix."""

from __future__ import annotations

import pytest

from nst_core.catalogue import NETWORKS as BACKBONES
from nst_core.catalogue import layer_names
from nst_core.errors import SettingsError
from nst_core.settings import DEFAULT_LR, Settings, parse_list


def problems_of(values: dict) -> dict[str, str]:
    with pytest.raises(SettingsError) as info:
        Settings.from_values(values)
    return dict(info.value.problems)


def test_defaults() -> None:
    s = Settings()
    assert (s.backbone, s.image_size, s.optimizer, s.init) == ("vgg19", 512, "lbfgs", "content")
    assert s.content_layers == list(BACKBONES["vgg19"].content_layers)
    assert s.style_layers == list(BACKBONES["vgg19"].style_layers)
    assert s.content_layer_weights == [1.0] * len(s.content_layers)
    assert s.style_layer_weights == [1.0] * len(s.style_layers)
    assert s.lr == DEFAULT_LR["lbfgs"]
    assert s.lr_schedule == {}
    assert s.style_weights is None


def test_default_layers_follow_the_backbone() -> None:
    s = Settings(backbone="squeezenet1_1")
    assert s.content_layers == list(BACKBONES["squeezenet1_1"].content_layers)
    assert s.style_layers == list(BACKBONES["squeezenet1_1"].style_layers)
    assert s.style_layer_weights == [1.0] * len(s.style_layers)


@pytest.mark.parametrize("optimizer", sorted(DEFAULT_LR))
def test_lr_default_depends_on_optimizer(optimizer: str) -> None:
    assert Settings(optimizer=optimizer).lr == DEFAULT_LR[optimizer]
    assert Settings(optimizer=optimizer, lr=0.5).lr == 0.5


def test_lbfgs_and_adam_defaults_differ() -> None:
    assert Settings.from_values({"optimizer": "adam"}).lr != Settings.from_values({"optimizer": "lbfgs"}).lr


def test_blank_values_mean_default() -> None:
    assert Settings.from_values({"image_size": "", "lr": None, "style_layers": ""}) == Settings()


def test_strings_are_converted() -> None:
    s = Settings.from_values({"image_size": "64", "style_weight": "1e3", "channels_last": "true", "seed": "7"})
    assert (s.image_size, s.style_weight, s.channels_last, s.seed) == (64, 1000.0, True, 7)


def test_unknown_setting_suggests_the_close_one() -> None:
    problems = problems_of({"imag_size": 64})
    assert list(problems) == ["imag_size"]
    assert "unknown setting" in problems["imag_size"]
    assert "did you mean 'image_size'" in problems["imag_size"]


def test_wrong_type_names_field_and_value() -> None:
    problems = problems_of({"image_size": "big"})
    assert list(problems) == ["image_size"]
    assert "integer" in problems["image_size"]
    assert "'big'" in problems["image_size"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("style_weight", -1),
        ("content_weight", -0.5),
        ("tv_weight", -1),
        ("image_size", 0),
        ("iterations", 0),
        ("lr", 0),
        ("style_scale", 0),
        ("snapshot_every", -1),
    ],
)
def test_out_of_range(field: str, value: float) -> None:
    problems = problems_of({field: value})
    assert list(problems) == [field]
    assert repr(value) in problems[field]


def test_several_problems_are_all_reported() -> None:
    problems = problems_of({"image_size": 0, "style_weight": -1, "optimizer": "sgd"})
    assert set(problems) == {"image_size", "style_weight", "optimizer"}


def test_problems_are_field_reason_pairs_and_message_joins_them() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_values({"image_size": 0, "tv_norm": "l3"})
    err = info.value
    assert all(isinstance(name, str) and isinstance(reason, str) and reason for name, reason in err.problems)
    for name, reason in err.problems:
        assert f"{name}: {reason}" in str(err)
    assert isinstance(err, ValueError)


def test_unknown_layer_lists_allowed_and_suggests_close_one() -> None:
    problems = problems_of({"style_layers": "relu1_1|relu9_1"})
    message = problems["style_layers"]
    assert "'relu9_1'" in message
    assert "did you mean 'relu5_1'" in message
    allowed = message.split("Allowed:", 1)[1]
    assert [name.strip() for name in allowed.split(",")] == list(layer_names("vgg19"))


def test_unknown_layer_is_checked_against_the_chosen_backbone() -> None:
    problems = problems_of({"backbone": "squeezenet1_1", "content_layers": "relu4_2"})
    assert "squeezenet1_1" in problems["content_layers"]
    assert "fire5" in problems["content_layers"]
    assert Settings.from_values({"backbone": "squeezenet1_1", "content_layers": "fire6"}).content_layers == ["fire6"]


@pytest.mark.parametrize("text", ["relu1_1|relu3_1", "relu1_1,relu3_1", " relu1_1 | relu3_1 ", "relu1_1|relu3_1|"])
def test_list_parsing(text: str) -> None:
    assert Settings.from_values({"style_layers": text}).style_layers == ["relu1_1", "relu3_1"]
    assert parse_list(text) == ["relu1_1", "relu3_1"]


def test_numeric_lists_parse() -> None:
    s = Settings.from_values(
        {"style_layers": "relu1_1|relu2_1", "style_layer_weights": "0.5,2", "style_weights": "3|1"}
    )
    assert s.style_layer_weights == [0.5, 2.0]
    assert s.style_weights == [3.0, 1.0]


def test_parse_list_passes_non_strings_through() -> None:
    value = ["a", "b"]
    assert parse_list(value) is value


def test_lr_schedule_parsed_and_sorted() -> None:
    s = Settings.from_values({"lr_schedule": "400:0.01|180:0.1"})
    assert s.lr_schedule == {180: 0.1, 400: 0.01}
    assert list(s.lr_schedule) == [180, 400]
    assert Settings.from_values({"lr_schedule": "180:0.1|400:0.01"}).lr_schedule == s.lr_schedule


@pytest.mark.parametrize("text", ["180", "180:0.1:3", "0:0.1", "10:-1", "ten:0.1"])
def test_bad_lr_schedule(text: str) -> None:
    assert "lr_schedule" in problems_of({"lr_schedule": text})


def test_layer_weights_length_mismatch() -> None:
    problems = problems_of({"style_layers": "relu1_1|relu2_1", "style_layer_weights": "1|2|3"})
    assert "expected 2 weights" in problems["style_layer_weights"]
    assert "got 3" in problems["style_layer_weights"]
    problems = problems_of({"content_layer_weights": "1|1"})  # one default content layer
    assert "expected 1 weights" in problems["content_layer_weights"]


def test_negative_layer_weight() -> None:
    assert "content_layer_weights" in problems_of({"content_layer_weights": "-1"})


@pytest.mark.parametrize("blend", ["-1|2", "0|0"])
def test_bad_style_blend(blend: str) -> None:
    assert "style_weights" in problems_of({"style_weights": blend})


@pytest.mark.parametrize(("field", "value"), [("weights", "random"), ("weights", "random:x"), ("device", "gpu")])
def test_bad_strings(field: str, value: str) -> None:
    problems = problems_of({field: value})
    assert repr(value) in problems[field]


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Settings().image_size = 64  # type: ignore[misc]
