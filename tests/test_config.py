import pytest

from medaka_heart.config import Config, load_config, with_overrides


def test_defaults_and_toml_override(tmp_path):
    assert load_config().io.default_pixel_size_um == 1.115
    path = tmp_path / "c.toml"
    path.write_text("[cycles]\nhr_min_bpm = 60\n")
    config = load_config(path)
    assert config.cycles.hr_min_bpm == 60
    assert config.cycles.hr_max_bpm == Config().cycles.hr_max_bpm


@pytest.mark.parametrize(("text", "message"), [("[nope]\na = 1\n", "unknown config section"),
                                               ("[cycles]\nbogus = 1\n", "unknown key"),
                                               ("[cycles\n", "not valid TOML")])
def test_bad_config_names_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        load_config("missing.toml")


def test_overrides_ignore_none():
    config = with_overrides(Config(), "segment", device=None, batch_size=4)
    assert config.segment.batch_size == 4
    assert config.segment.device == "auto"
