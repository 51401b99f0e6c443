"""Config: the shipped file, every kind of error naming file/key/line, and atomic saves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuimail.config import Config, ConfigError, DomainSettings, Settings, load_or_create, parse_settings

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_the_documented_default():
    config = Config.load(ROOT / "config.toml")
    expected = Settings(domains=[DomainSettings(name="lab.test", ip="127.0.0.1")])
    assert config.settings == expected
    assert config.settings.ports.listeners() == {"smtp": 2525, "submission": 2587, "pop3": 2110, "imap": 2143}
    assert config.data_dir == (ROOT / "data").resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ports]\nsmtp = 70000\n", "x.toml:2: ports.smtp: Input should be less than or equal to 65535"),
        ("[ports]\nsmtpp = 25\n", "x.toml:2: ports.smtpp: unknown key"),
        ("[server\n", "x.toml: TOML syntax error"),
        ("[server]\nhostname = 'bad host'\n", "x.toml:2: server.hostname: domain name 'bad host' is not valid"),
        ("[[domains]]\nname = 'lab.test'\nip = 'nope'\n", "x.toml:3: domains[0].ip: 'nope' is not an IP address"),
        ("[policy]\nmax_message_size = 'big'\n", "x.toml:2: policy.max_message_size: Input should be a valid integer"),
        ("[[domains]]\nname='a.test'\n[[domains]]\nname='a.test'\n", "domain a.test is listed twice"),
        ("colour = 'blue'\n", "x.toml:1: colour: unknown key"),
    ],
)
def test_bad_config_is_one_line_naming_the_problem(text, message):
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "x.toml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_toml_syntax_error_names_the_line():
    with pytest.raises(ConfigError, match="line 3"):
        parse_settings("[server]\nhostname = 'a.test'\nlog_dir = \n", "x.toml")


def test_save_is_atomic_and_keeps_a_backup(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text((ROOT / "config.toml").read_text())
    config = Config.load(path)
    config.settings.ports.smtp = 3025
    config.save()
    assert Config.load(path).settings.ports.smtp == 3025
    assert Config.load(path.with_name("config.toml.bak")).settings.ports.smtp == 2525
    assert "[[domains]]" in path.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_first_run_writes_the_default_under_xdg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = load_or_create(None)
    assert config.path == tmp_path / "xdg" / "tuimail" / "config.toml"
    assert config.settings.domains[0].name == "lab.test"


def test_local_config_wins_over_xdg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "config.toml").write_text("[server]\nhostname = 'here.test'\n")
    assert load_or_create(None).settings.server.hostname == "here.test"
