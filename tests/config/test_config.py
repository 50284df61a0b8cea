import copy
import dataclasses
import typing

import pytest

from pipeline.config import (
    ConfigError, MissingMetadata, Params, Range, Source, TextField, params_from_dict, with_overrides,
)


def test_real_params_load(real_params):
    params = params_from_dict(real_params)
    assert params.dataset.source is Source.SYNTHETIC
    assert params.ingest.missing_metadata is MissingMetadata.DROP
    assert params.ingest.text_fields[0] is TextField.TITLE
    assert params.ingest.max_history == 20


def _edit(real_params, section, key, value):
    raw = copy.deepcopy(real_params)
    raw[section][key] = value
    return raw


def test_typo_names_key_section_and_allowed_keys(real_params):
    raw = copy.deepcopy(real_params)
    raw["ingest"]["user_kk"] = 5
    with pytest.raises(ConfigError) as err:
        params_from_dict(raw)
    message = str(err.value)
    assert "'ingest.user_kk'" in message
    assert "section 'ingest'" in message
    assert "did you mean 'user_k'" in message
    assert "item_k" in message and "max_history" in message


def test_missing_key(real_params):
    raw = copy.deepcopy(real_params)
    del raw["ingest"]["item_k"]
    with pytest.raises(ConfigError, match=r"missing key 'ingest.item_k'"):
        params_from_dict(raw)


def test_missing_section(real_params):
    raw = copy.deepcopy(real_params)
    del raw["dataset"]
    with pytest.raises(ConfigError, match=r"missing key 'dataset'"):
        params_from_dict(raw)


@pytest.mark.parametrize("value", ["5", 5.0, True, None])
def test_wrong_type_for_int(real_params, value):
    with pytest.raises(ConfigError, match=r"'ingest.user_k' must be of type int"):
        params_from_dict(_edit(real_params, "ingest", "user_k", value))


def test_unknown_enum_value_lists_allowed(real_params):
    with pytest.raises(ConfigError) as err:
        params_from_dict(_edit(real_params, "dataset", "source", "amazon2020"))
    assert "'dataset.source'" in str(err.value)
    for source in Source:
        assert source.value in str(err.value)


def test_enum_inside_list(real_params):
    with pytest.raises(ConfigError, match=r"'ingest.text_fields\[1\]'.*allowed values"):
        params_from_dict(_edit(real_params, "ingest", "text_fields", ["title", "colour"]))


def test_mapping_keys_are_enums(real_params):
    raw = _edit(real_params, "dataset", "prepared_codes", {"txt": "lemb"})
    with pytest.raises(ConfigError, match=r"prepared_codes \(key\)"):
        params_from_dict(raw)


def test_range_check(real_params):
    with pytest.raises(ConfigError, match=r"'ingest.user_k' must be at least 3"):
        params_from_dict(_edit(real_params, "ingest", "user_k", 2))


@pytest.mark.parametrize("section, key, value, bound", [
    ("train", "batch_size", 0, "at least 1"),
    ("train", "lr", 0.0, "greater than 0"),
    ("train", "warmup_ratio", 1.0, r"in \[0, 1\)"),
    ("sasrec", "dropout", -0.1, r"in \[0, 1\)"),
    ("sasrec", "negatives", 0, "at least 1"),
    ("sasrec", "valid_users", -5, "at least 0"),
    ("evaluate", "users", -1, "at least 0"),
    ("quantize", "codebook_size", 1, "at least 2"),
])
def test_numeric_bounds_name_the_key(real_params, section, key, value, bound):
    with pytest.raises(ConfigError, match=rf"'{section}.{key}' is {value}; it must be {bound}"):
        params_from_dict(_edit(real_params, section, key, value))


def test_bound_inside_nested_list(real_params):
    raw = copy.deepcopy(real_params)
    raw["quantize"]["rqvae"]["hidden"] = [512, 0]
    with pytest.raises(ConfigError, match=r"'quantize.rqvae.hidden\[1\]' is 0"):
        params_from_dict(raw)


def _numeric_fields(cls, where=""):
    for field in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls, include_extras=True)[field.name]
        key = f"{where}{field.name}"
        if typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(tp):
            yield from _numeric_fields(tp, key + ".")
        elif typing.get_origin(tp) is typing.Annotated or tp in (int, float):
            yield key, tp


def test_every_numeric_param_has_bounds():
    fields = dict(_numeric_fields(Params))
    assert "train.batch_size" in fields and "seed" in fields
    unbounded = [key for key, tp in fields.items()
                 if not any(isinstance(m, Range) for m in getattr(tp, "__metadata__", ()))]
    assert unbounded == []


def test_sasrec_and_the_generative_model_must_read_the_same_history(real_params):
    raw = _edit(real_params, "sasrec", "max_len", 50)
    with pytest.raises(ConfigError, match=r"'sasrec.max_len' \(50\) must equal train.max_history"):
        params_from_dict(raw)


def test_params_are_frozen(real_params):
    params = params_from_dict(real_params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.ingest.user_k = 1
    with pytest.raises(TypeError):
        params.dataset.prepared_codes["text"] = "x"


def test_section_must_be_mapping(real_params):
    raw = copy.deepcopy(real_params)
    raw["ingest"] = [1, 2]
    with pytest.raises(ConfigError, match=r"'ingest' must be a mapping"):
        params_from_dict(raw)


def test_with_overrides_sets_dotted_keys_on_a_copy(real_params):
    raw = with_overrides(real_params, {"train.lr": 0.0005, "quantize.methods.image": "rqdino"})
    assert raw["train"]["lr"] == 0.0005 and raw["quantize"]["methods"]["image"] == "rqdino"
    assert real_params["quantize"]["methods"]["image"] != "rqdino"    # input untouched
    assert params_from_dict(raw).quantize.methods["image"].value == "rqdino"
    with pytest.raises(ConfigError, match="train.lrr"):
        params_from_dict(with_overrides(real_params, {"train.lrr": 0.1}))
