"""Manifests: parsing rows into pairs, one RowError per problem (header is row 1), and pair ids."""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import pytest

from nst_core import Settings, SettingsError, StorageError
from tasks.manifest.read import Manifest, Pair, RowError, _auto_id, _pixel_settings, read_manifest
from tasks.storage.root import OutputRoot

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket, WebFolder


def write_manifest(path: Path, *lines: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def read(tmp_path: Path, *lines: str, defaults: dict[str, Any] | None = None) -> Manifest:
    return read_manifest(write_manifest(tmp_path / "manifest.csv", *lines), defaults)


def where(manifest: Manifest) -> list[tuple[int, str]]:
    return [(error.row, error.column) for error in manifest.errors]


def only_pair(manifest: Manifest) -> Pair:
    assert manifest.errors == []
    assert len(manifest.pairs) == 1
    return manifest.pairs[0]


# --- parsing ---------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_manifest_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = write_manifest(tmp_path / "project" / "m.csv", "content,style", "images/c.png,../styles/s.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    base = (tmp_path / "project").resolve()
    for manifest_path in (uri, "../project/m.csv"):  # absolute, and relative to the cwd
        pair = only_pair(read_manifest(manifest_path))
        assert pair.content == f"{base}/images/c.png"
        assert pair.styles == (str(tmp_path / "styles" / "s.png"),)  # normalised
        assert pair.row == 2


def test_absolute_paths_and_uris_are_kept(tmp_path: Path) -> None:
    manifest = read(
        tmp_path,
        "content,style",
        "/data/c.png,s3://bucket/styles/a.png|https://example.com/b.jpg?x=1",
        "gs://bucket/c.png,/abs/s.png",
    )
    assert manifest.errors == []
    first, second = manifest.pairs
    assert first.content == "/data/c.png"
    assert first.styles == ("s3://bucket/styles/a.png", "https://example.com/b.jpg?x=1")
    assert (second.content, second.styles) == ("gs://bucket/c.png", ("/abs/s.png",))


def test_several_styles_with_blend_weights(tmp_path: Path) -> None:
    pair = only_pair(read(tmp_path, "content,style,style_weights", "c.png,a.png|b.png,0.7|0.3"))
    base = tmp_path.resolve()
    assert pair.styles == (f"{base}/a.png", f"{base}/b.png")
    assert pair.settings.style_weights == [0.7, 0.3]


@pytest.mark.parametrize(
    ("styles", "weights", "reason"),
    [("a.png|b.png", "0.5|0.3|0.2", "3 weights for 2 styles"), ("a.png", "0.5|0.5", "2 weights for 1 styles")],
)
def test_blend_weight_count_mismatch_is_a_row_error(tmp_path: Path, styles: str, weights: str, reason: str) -> None:
    manifest = read(tmp_path, "content,style,style_weights", "c.png,x.png,", f"c.png,{styles},{weights}")
    assert manifest.errors == [RowError.at(3, "style_weights", reason)]
    assert [pair.row for pair in manifest.pairs] == [2]


def test_tags_are_split(tmp_path: Path) -> None:
    manifest = read(tmp_path, "content,style,tags", "c.png,s.png,portrait|  test ", "d.png,s.png,")
    assert manifest.errors == []
    assert [pair.tags for pair in manifest.pairs] == [("portrait", "test"), ()]


def test_tags_are_split_on_commas_too(tmp_path: Path) -> None:
    pair = only_pair(read(tmp_path, "content,style,tags", 'c.png,s.png,"a, b"'))
    assert pair.tags == ("a", "b")


def test_blank_cells_take_the_defaults_then_the_settings_defaults(tmp_path: Path) -> None:
    lines = ("content,style,iterations,optimizer", "c.png,s.png,,", "d.png,s.png,3,adam")
    plain = read(tmp_path, *lines)
    assert [pair.settings.iterations for pair in plain.pairs] == [Settings().iterations, 3]
    assert [pair.settings.optimizer for pair in plain.pairs] == [Settings().optimizer, "adam"]

    given = read(tmp_path, *lines, defaults={"iterations": 7, "image_size": 64})
    assert [pair.settings.iterations for pair in given.pairs] == [7, 3]  # a row value beats the defaults
    assert [pair.settings.image_size for pair in given.pairs] == [64, 64]  # no column: the defaults
    assert [pair.settings.lr for pair in given.pairs] == [1.0, 0.04]  # derived from the row's optimizer
    assert [pair.settings.style_weight for pair in given.pairs] == [Settings().style_weight] * 2


def test_init_and_weights_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    manifest = read(
        tmp_path,
        "content,style,init,weights",
        "c.png,s.png,start.png,models/vgg.pth",
        "c.png,t.png,noise,random:3",
        "c.png,u.png,style,imagenet",
        "c.png,v.png,/abs/start.png,s3://bucket/vgg.pth",
        "c.png,w.png,content,",
    )
    assert manifest.errors == []
    base = tmp_path.resolve()
    settings = [(pair.settings.init, pair.settings.weights) for pair in manifest.pairs]
    assert settings == [
        (f"{base}/start.png", f"{base}/models/vgg.pth"),
        ("noise", "random:3"),
        ("style", "imagenet"),
        ("/abs/start.png", "s3://bucket/vgg.pth"),
        ("content", "imagenet"),
    ]


def test_excel_csv_with_bom_crlf_and_padded_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeff content , style ,iterations\r\n c.png , s.png , 4 \r\n".encode())
    pair = only_pair(read_manifest(str(path)))
    assert pair.content == f"{tmp_path.resolve()}/c.png"
    assert pair.settings.iterations == 4


def test_manifest_name_is_the_file_stem(tmp_path: Path) -> None:
    assert read(tmp_path, "content,style").name == "manifest"


def test_missing_manifest_raises_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        read_manifest(str(tmp_path / "nope.csv"))
    assert str(info.value) == f"manifest {tmp_path}/nope.csv: not found"


def test_manifest_on_s3_resolves_relative_paths_to_s3(s3: Bucket) -> None:
    uri = s3.put("jobs/m.csv", b"content,style\nimages/c.png,/abs/s.png|s.png\n")
    pair = only_pair(read_manifest(uri))
    assert pair.content == f"{s3.uri}/jobs/images/c.png"
    assert pair.styles == ("/abs/s.png", f"{s3.uri}/jobs/s.png")


def test_manifest_over_http_resolves_relative_paths_to_http(web: WebFolder) -> None:
    (web.root / "jobs").mkdir()
    (web.root / "jobs" / "m.csv").write_text("content,style,init\nc.png,styles/s.png,start.png\n")
    pair = only_pair(read_manifest(f"{web.url}/jobs/m.csv"))
    assert pair.content == f"{web.url}/jobs/c.png"
    assert pair.styles == (f"{web.url}/jobs/styles/s.png",)
    assert pair.settings.init == f"{web.url}/jobs/start.png"


# --- bad rows --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "missing"), [("content,iterations", ["style"]), ("id,iterations", ["content", "style"])]
)
def test_missing_required_column_fails_every_row(tmp_path: Path, header: str, missing: list[str]) -> None:
    manifest = read(tmp_path, header, "a.png,3", "b.png,4")
    assert manifest.pairs == []
    assert manifest.errors == [RowError.at(1, column, "required column is missing") for column in missing]
    assert str(manifest.errors[0]) == f"row 1, column {missing[0]}: required column is missing"


def test_bad_rows_are_reported_and_good_rows_still_become_pairs(tmp_path: Path) -> None:
    manifest = read(
        tmp_path,
        "id,content,style,iterations",  # row 1
        "good1,c.png,s.png,3",  # row 2
        "short,c.png",  # row 3: fewer fields
        "long,c.png,s.png,3,surplus,more",  # row 4: more fields
        "nostyle,c.png,,3",  # row 5: blank required cell
        ",,s.png,3",  # row 6: blank content
        "negative,c.png,s.png,-3",  # row 7: invalid value
        "",  # blank line: skipped, but still counted
        "good2,d.png,s.png,",  # row 9
    )
    assert [pair.pair_id for pair in manifest.pairs] == ["good1", "good2"]
    assert [pair.row for pair in manifest.pairs] == [2, 9]
    assert where(manifest) == [
        (3, "style"),
        (3, "iterations"),
        (4, "(row)"),
        (5, "style"),
        (6, "content"),
        (7, "iterations"),
    ]
    reasons = {(error.row, error.column): error.reason for error in manifest.errors}
    assert reasons[3, "style"].startswith("missing")
    assert reasons[4, "(row)"] == "2 more fields than the header"
    assert reasons[5, "style"] == reasons[6, "content"] == "required"
    assert "greater than or equal to 1" in reasons[7, "iterations"]
    assert "-3" in reasons[7, "iterations"]


def test_unknown_setting_column_with_a_value_suggests_a_name(tmp_path: Path) -> None:
    manifest = read(tmp_path, "content,style,iteratons,zzz", "a.png,s.png,,", "b.png,s.png,5,", "c.png,s.png,,1")
    assert [pair.row for pair in manifest.pairs] == [2]  # blank cells in unknown columns are fine
    assert manifest.errors == [
        RowError.at(3, "iteratons", "unknown setting; did you mean 'iterations'?"),
        RowError.at(4, "zzz", "unknown setting"),
    ]


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("iterations", "-3", ["greater than or equal to 1"]),
        ("iterations", "many", ["integer", "many"]),
        ("backbone", "resnet", ["vgg19", "resnet"]),
        ("device", "tpu", ["cuda", "tpu"]),
        ("style_layers", "relu9_9", ["unknown layer", "relu9_9"]),
    ],
)
def test_invalid_setting_value_is_a_row_error(tmp_path: Path, column: str, value: str, words: list[str]) -> None:
    manifest = read(tmp_path, f"content,style,{column}", "a.png,s.png,", f"b.png,s.png,{value}")
    assert [pair.row for pair in manifest.pairs] == [2]
    assert where(manifest) == [(3, column)]
    for word in words:
        assert word in manifest.errors[0].reason


def test_every_invalid_setting_of_a_row_is_reported(tmp_path: Path) -> None:
    manifest = read(tmp_path, "content,style,iterations,backbone", "a.png,s.png,-3,resnet")
    assert manifest.pairs == []
    assert sorted(where(manifest)) == [(2, "backbone"), (2, "iterations")]


def test_duplicate_user_ids_report_the_later_row(tmp_path: Path) -> None:
    manifest = read(tmp_path, "id,content,style", "same,a.png,s.png", "other,b.png,s.png", "same,c.png,t.png")
    assert [(pair.pair_id, pair.row) for pair in manifest.pairs] == [("same", 2), ("other", 3)]
    assert manifest.errors == [RowError.at(4, "id", "duplicate id 'same' (row 2)")]


def test_identical_rows_without_id_are_duplicates(tmp_path: Path) -> None:
    manifest = read(tmp_path, "content,style,iterations", "a.png,s.png,3", "b.png,s.png,3", "a.png,s.png,3")
    first = manifest.pairs[0]
    assert [pair.row for pair in manifest.pairs] == [2, 3]
    assert manifest.errors == [RowError.at(4, "id", f"duplicate id {first.pair_id!r} (row 2)")]


@pytest.mark.parametrize("unsafe", ["../../x", "a/b", ".hidden", "..", "/etc", "a\\b", "with space", "x" * 121])
def test_unsafe_ids_are_rejected(tmp_path: Path, unsafe: str) -> None:
    manifest = read(tmp_path, "id,content,style", f'"{unsafe}",a.png,s.png', "ok.v2_1-x,b.png,s.png")
    assert [pair.pair_id for pair in manifest.pairs] == ["ok.v2_1-x"]
    assert where(manifest) == [(2, "id")]
    assert "not a safe folder name" in manifest.errors[0].reason


def test_no_pair_folder_escapes_the_output_root(tmp_path: Path) -> None:
    ids = ["../../x", "a/b", ".hidden", "..", "_under", "fine", "x..", "", ""]
    lines = [f'"{pair_id}",{index}.png,../s.png' for index, pair_id in enumerate(ids)]
    odd = ",../.png,.../..png|..png"  # auto ids of odd names too
    manifest = read(tmp_path, "id,content,style", *lines, odd)
    out = "/renders/run"
    assert len(manifest.pairs) == 5
    for pair in manifest.pairs:
        folder = posixpath.normpath(OutputRoot.open(out).pair_uri(pair.pair_id))
        assert posixpath.dirname(folder) == out
        assert not posixpath.basename(folder).startswith(".")


# --- pair ids and fingerprints ---------------------------------------------------------------------

AUTO_ID = re.compile(r"^(?P<slug>.+)-(?P<hash>[0-9a-f]{8})$")


def test_auto_id_is_readable_plus_a_hash(tmp_path: Path) -> None:
    manifest = read(
        tmp_path,
        "content,style",
        "photos/Beach Day.jpg,styles/starry_night.png",
        "cat.png,a.png|b.jpg",
        "s3://bucket/dir/x.y.png,https://h/img.png?size=big",
    )
    assert manifest.errors == []
    slugs = []
    for pair in manifest.pairs:
        match = AUTO_ID.match(pair.pair_id)
        assert match, pair.pair_id
        assert match["hash"] == pair.fingerprint[:8]
        slugs.append(match["slug"])
    assert slugs == ["Beach-Day__starry_night", "cat__a+b", "x.y__img"]


def test_labels_name_content_and_style_and_what_tells_variants_apart(tmp_path: Path) -> None:
    """People read pairs by their labels; a sweep's variants by the settings that differ (ids stay hashes)."""
    manifest = read(
        tmp_path,
        "id,content,style,style_weight,iterations",
        ",photos/astronaut.png,composition_vii.jpg,1,",
        ",photos/astronaut.png,composition_vii.jpg,3,",
        ",photos/astronaut.png,composition_vii.jpg,3,50",
        ",photos/cat.png,a.png|b.jpg,3,",
        "mine,photos/cat.png,a.png,,",
    )
    assert manifest.errors == []
    assert [pair.label for pair in manifest.pairs] == [
        "astronaut \N{MULTIPLICATION SIGN} composition_vii \N{MIDDLE DOT} iterations=500, style_weight=1",
        "astronaut \N{MULTIPLICATION SIGN} composition_vii \N{MIDDLE DOT} iterations=500, style_weight=3",
        "astronaut \N{MULTIPLICATION SIGN} composition_vii \N{MIDDLE DOT} iterations=50, style_weight=3",
        "cat \N{MULTIPLICATION SIGN} a + b",
        "mine",
    ]
    assert all(AUTO_ID.match(pair.pair_id) for pair in manifest.pairs[:4])


def test_the_same_row_gets_the_same_id_in_two_reads(tmp_path: Path) -> None:
    lines = ("content,style,iterations,tags", "c.png,s.png,3,x", "d.png,s.png|t.png,4,")
    first = read(tmp_path / "one", *lines).pairs
    again = read(tmp_path / "one", *lines).pairs
    assert [p.pair_id for p in first] == [p.pair_id for p in again]
    assert [p.fingerprint for p in first] == [p.fingerprint for p in again]


def test_same_stem_in_different_folders_gives_different_ids(tmp_path: Path) -> None:
    manifest = read(tmp_path, "content,style", "a/c.png,s.png", "b/c.png,s.png")
    assert manifest.errors == []
    one, two = manifest.pairs
    assert AUTO_ID.match(one.pair_id)["slug"] == AUTO_ID.match(two.pair_id)["slug"] == "c__s"  # type: ignore[index]
    assert one.pair_id != two.pair_id


@pytest.mark.parametrize(
    ("column", "value", "other"),
    [
        ("iterations", "3", "4"),
        ("style_weight", "1e4", "2e4"),
        ("init", "content", "noise"),
        ("weights", "random:0", "random:1"),
        ("optimizer", "lbfgs", "adam"),
    ],
)
def test_a_setting_changes_the_id_and_the_fingerprint(tmp_path: Path, column: str, value: str, other: str) -> None:
    manifest = read(tmp_path, f"content,style,{column}", f"c.png,s.png,{value}", f"c.png,s.png,{other}")
    assert manifest.errors == []
    one, two = manifest.pairs
    assert one.fingerprint != two.fingerprint
    assert one.pair_id != two.pair_id
    assert one.pair_id.split("-")[0] == two.pair_id.split("-")[0]  # the readable part is the same


def test_defaults_change_the_fingerprint_like_cells(tmp_path: Path) -> None:
    lines = ("content,style", "c.png,s.png")
    assert (
        read(tmp_path, *lines).pairs[0].fingerprint != read(tmp_path, *lines, defaults={"seed": 1}).pairs[0].fingerprint
    )
    cell = read(tmp_path, "content,style,seed", "c.png,s.png,1").pairs[0]
    default = read(tmp_path, *lines, defaults={"seed": 1}).pairs[0]
    assert (cell.pair_id, cell.fingerprint) == (default.pair_id, default.fingerprint)


def test_device_does_not_change_the_fingerprint(tmp_path: Path) -> None:
    manifest = read(tmp_path, "id,content,style,device", "a,c.png,s.png,cpu", "b,c.png,s.png,cuda:1", "c,c.png,s.png,")
    assert len({pair.fingerprint for pair in manifest.pairs}) == 1
    auto = read(tmp_path / "x", "content,style,device", "c.png,s.png,cpu").pairs[0]
    again = read(tmp_path / "x", "content,style,device", "c.png,s.png,auto").pairs[0]
    assert auto.pair_id == again.pair_id


def test_user_ids_are_kept_and_fingerprints_still_follow_the_settings(tmp_path: Path) -> None:
    manifest = read(tmp_path, "id,content,style,iterations", f"My_pair-1.v2,c.png,{tmp_path.resolve()}/x/s.png,3")
    changed = read(tmp_path / "x", "id,content,style,iterations", f"My_pair-1.v2,{tmp_path.resolve()}/c.png,s.png,4")
    assert manifest.pairs[0].pair_id == changed.pairs[0].pair_id == "My_pair-1.v2"
    assert manifest.pairs[0].content == changed.pairs[0].content  # the same inputs ...
    assert manifest.pairs[0].styles == changed.pairs[0].styles
    assert manifest.pairs[0].fingerprint != changed.pairs[0].fingerprint  # ... but other settings


def test_inputs_change_the_fingerprint(tmp_path: Path) -> None:
    manifest = read(
        tmp_path, "id,content,style", "a,c.png,s.png", "b,c.png,t.png", "c,d.png,s.png", "d,c.png,s.png|t.png"
    )
    assert len({pair.fingerprint for pair in manifest.pairs}) == 4


# --- the fingerprint: every setting that changes the pixels --------------------------------------------------------

# where and how fast it runs, and a limit on inputs: the pixels are the same
NOT_IN_FINGERPRINT = {
    "device",
    "max_pixels",
    "cudnn_benchmark",
    "compile",
    "tile_size",
    "max_frames",
    "checkpoint_every_s",
}
CLIP_ONLY = {name for name in Settings.model_fields if Settings.knob(name).clip}  # not in a still's fingerprint
# not in the fingerprint of a row without masks (a keep mask is a mask)
MASKS_ONLY = {name for name in Settings.model_fields if Settings.knob(name).masks} - {"keep_mask"}
OTHER_VALUES: dict[str, Any] = {  # a valid value other than the default, for fields whose type says too little
    "frame_end": 10,
    "weights": "random:1",
    "init": "noise",
    "content_layers": ["relu3_1"],
    "content_layer_weights": [2.0],
    "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_2"],
    "style_layer_weights": [1.0, 1.0, 1.0, 1.0, 2.0],
    "style_weights": [1.0],
    "lr_schedule": {5: 0.1},
    "start_size": 64,
    "image_size": 256,
    "device": "cpu",
    "keep_mask": "/keep.png",
    "mask_threshold": 0.25,
}


def other_value(name: str, default: Any) -> Any:
    """A valid value of setting ``name`` other than ``default``, from its type where that is enough."""
    if name in OTHER_VALUES:
        return OTHER_VALUES[name]
    annotation = Settings.model_fields[name].annotation
    if get_origin(annotation) is Literal:
        return next(choice for choice in get_args(annotation) if choice != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        return default + 1
    raise AssertionError(f"no other value for the new setting {name!r}: add one to OTHER_VALUES")


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_but_the_device_and_input_limit_changes_the_pair_id(name: str, clip: bool, masked: bool) -> None:
    """A still's id leaves the clips' settings out, and a row without masks the masks': finished pairs keep their
    ids when such settings arrive."""
    default = Settings()
    changed = Settings.model_validate(default.model_dump() | {name: other_value(name, getattr(default, name))})
    assert getattr(changed, name) != getattr(default, name)
    content, masks = "/c.mp4" if clip else "/c.png", ("/m.png",) if masked else ()
    before, after = (Pair("", 2, content, ("/s.png",), s, clip=clip, style_masks=masks) for s in (default, changed))
    same = before.fingerprint == after.fingerprint
    unused = NOT_IN_FINGERPRINT | (set() if clip else CLIP_ONLY) | (set() if masked else MASKS_ONLY)
    assert same is (name in unused), f"{name}: fingerprint {'unchanged' if same else 'changed'}"
    assert (_auto_id(before) == _auto_id(after)) is same


@pytest.mark.parametrize("name", sorted(Settings.names(newer=True)))
def test_a_newer_setting_at_its_default_is_left_out_of_the_id(name: str) -> None:
    """Pairs finished before the setting existed rendered as its default does: they keep their ids."""
    settings = Settings()
    payload = json.dumps(_pixel_settings(settings, clip=False, masked=False))
    assert name not in payload
    changed = settings.model_copy(update={name: other_value(name, getattr(settings, name))})
    assert name in json.dumps(_pixel_settings(changed, clip=False, masked=False))


def test_a_bad_default_is_one_error_not_one_per_row(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("content,style\n" + "".join(f"c{i}.png,s.png\n" for i in range(5)))
    with pytest.raises(SettingsError) as info:
        read_manifest(str(manifest), {"iterations": "many", "style_weight": "3"})
    assert [name for name, _ in info.value.problems] == ["iterations"]
