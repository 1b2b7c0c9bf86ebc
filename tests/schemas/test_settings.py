"""Settings: defaults, the toml < environment < flags layering, upstream mounts, and clear startup errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolwatch.schemas.errors import ConfigError
from toolwatch.schemas.settings import (
    BUILTIN_UPSTREAMS,
    RESERVED_MOUNTS,
    Settings,
    chdb_path,
    load_settings,
    user_data_dir,
)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toolwatch.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # defaults are relative to the working directory: keep them inside the test's own directory
    monkeypatch.chdir(tmp_path)


# -- defaults --------------------------------------------------------------------------------------


def test_defaults_without_file_environment_or_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    s = load_settings(None, environ={})
    assert s.host == "127.0.0.1"
    assert s.port == 8787
    assert s.database == "toolwatch"
    assert s.store == f"chdb://{tmp_path / 'xdg' / 'toolwatch' / 'store'}" == f"chdb://{user_data_dir() / 'store'}"
    assert s.spool == f"{tmp_path / 'xdg' / 'toolwatch' / 'store'}.spool"
    assert s.store_origin == "default"
    assert s.spool_path == Path(s.spool)
    assert s.store_bodies == "redacted"
    assert s.log_level == "info"


def test_builtin_upstreams_without_any_upstream_configuration() -> None:
    s = load_settings(None, environ={})
    assert set(s.upstreams) == {"openai", "anthropic", "gemini"}
    assert s.upstreams["openai"].url == "https://api.openai.com"
    assert s.upstreams["anthropic"].api == "anthropic"


def test_builtin_upstreams_beside_a_configured_one() -> None:
    env = {"TOOLWATCH_UPSTREAM_LOCAL_URL": "http://127.0.0.1:1", "TOOLWATCH_UPSTREAM_LOCAL_API": "openai"}
    s = load_settings(None, environ=env)
    assert set(s.upstreams) == {"openai", "anthropic", "gemini", "local"}
    assert s.upstreams["openai"].url == "https://api.openai.com"
    assert s.upstreams["openai"].api == "openai"
    assert s.upstreams["anthropic"].url == "https://api.anthropic.com"
    assert s.upstreams["anthropic"].api == "anthropic"


def test_settings_model_alone_has_the_same_defaults(tmp_path: Path) -> None:
    assert Settings() == load_settings(None, environ={})


def test_loading_does_not_mutate_the_builtin_upstream_table() -> None:
    before = {k: dict(v) for k, v in BUILTIN_UPSTREAMS.items()}
    load_settings(None, environ={"TOOLWATCH_UPSTREAM_OPENAI_URL": "http://127.0.0.1:1"})
    assert BUILTIN_UPSTREAMS == before
    again = load_settings(None, environ={"TOOLWATCH_UPSTREAM_ANTHROPIC_URL": "http://127.0.0.1:2"})
    assert again.upstreams["openai"].url == "https://api.openai.com"


def test_settings_are_frozen() -> None:
    s = load_settings(None, environ={})
    with pytest.raises(ValueError):
        s.port = 1  # type: ignore[misc]


# -- store and spool paths -------------------------------------------------------------------------


def test_spool_defaults_beside_the_embedded_store(tmp_path: Path) -> None:
    s = load_settings(None, environ={}, overrides={"store": f"chdb://{tmp_path}/data/st"})
    assert s.spool == f"{tmp_path}/data/st.spool"


def test_a_relative_embedded_store_is_a_startup_error() -> None:
    # chdb://relative/store (one slash short) used to be accepted, and the recorder then looped forever
    with pytest.raises(ConfigError, match="absolute path, chdb:///abs/path"):
        load_settings(None, environ={}, overrides={"store": "chdb://rel/store"})


def test_spool_ignores_the_dsn_query_string(tmp_path: Path) -> None:
    s = load_settings(None, environ={}, overrides={"store": f"chdb://{tmp_path}/st?setting=1"})
    assert s.spool == f"{tmp_path}/st.spool"


def test_server_store_puts_the_spool_in_the_data_directory(tmp_path: Path) -> None:
    s = load_settings(None, environ={}, overrides={"store": "http://default:pw@localhost:8123/db"})
    assert s.store == "http://default:pw@localhost:8123/db"
    assert s.spool == str(user_data_dir() / "spool")
    assert s.store_origin == "set"


def test_the_same_default_store_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    here = load_settings(None, environ={})
    monkeypatch.chdir("/")
    assert load_settings(None, environ={}).store == here.store == f"chdb://{user_data_dir() / 'store'}"


def test_an_existing_toolwatch_data_folder_here_is_still_used(tmp_path: Path) -> None:
    (tmp_path / "toolwatch-data" / "store").mkdir(parents=True)
    s = load_settings(None, environ={})
    assert s.store == f"chdb://{tmp_path / 'toolwatch-data' / 'store'}" and s.store_origin == "legacy"
    assert s.spool == f"{tmp_path / 'toolwatch-data' / 'store'}.spool"
    (tmp_path / "toolwatch-data" / "spool").mkdir()
    server = load_settings(None, environ={"TOOLWATCH_STORE": "http://localhost:8123"})
    assert server.spool == str(tmp_path / "toolwatch-data" / "spool") and server.store_origin == "set"


def test_explicit_relative_spool_is_made_absolute(tmp_path: Path) -> None:
    s = load_settings(None, environ={"TOOLWATCH_SPOOL": "sp"})
    assert s.spool == str(tmp_path / "sp")


def test_store_with_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ConfigError, match="store must be"):
        load_settings(None, environ={"TOOLWATCH_STORE": "/var/lib/toolwatch"})


def test_chdb_path() -> None:
    assert chdb_path("chdb:///abs/x?a=b") == "/abs/x"
    assert chdb_path("http://host:8123") is None
    assert chdb_path("https://host:8443/db") is None


# -- layering --------------------------------------------------------------------------------------


def test_toml_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, 'port = 1001\nhost = "0.0.0.0"\nbatch_rows = 7\ndatabase = "fromfile"\n')
    env = {"TOOLWATCH_PORT": "1002", "TOOLWATCH_BATCH_ROWS": "8"}
    s = load_settings(cfg, environ=env, overrides={"port": 1003, "database": None})
    assert s.port == 1003  # flag beats environment and file
    assert s.batch_rows == 8  # environment beats file
    assert s.host == "0.0.0.0"  # file beats default
    assert s.database == "fromfile"  # a None flag is "not given"


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "port = 4242\n")
    assert load_settings(None, environ={"TOOLWATCH_CONFIG": str(cfg)}).port == 4242


def test_environment_values_are_coerced() -> None:
    s = load_settings(
        None,
        environ={
            "TOOLWATCH_STORE_BODIES": "false",
            "TOOLWATCH_BATCH_INTERVAL": "0.25",
            "TOOLWATCH_TTL_DAYS": "3",
        },
    )
    assert s.store_bodies == "none"  # the boolean of older configs: false keeps no bodies
    assert s.batch_interval == 0.25
    assert s.ttl_days == 3


def test_unrelated_environment_is_ignored() -> None:
    s = load_settings(None, environ={"PORT": "1", "TOOLWATCH_NOT_A_SETTING": "x", "HOME": "/nowhere"})
    assert s.port == 8787


# -- upstreams -------------------------------------------------------------------------------------


def test_environment_overrides_a_builtin_upstream_url() -> None:
    s = load_settings(None, environ={"TOOLWATCH_UPSTREAM_OPENAI_URL": "http://127.0.0.1:9999/"})
    assert s.upstreams["openai"].url == "http://127.0.0.1:9999"  # trailing slash dropped
    assert s.upstreams["openai"].api == "openai"  # kept from the built-in entry
    assert s.upstreams["anthropic"].url == "https://api.anthropic.com"


def test_new_upstream_from_toml(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[upstreams.glm]\nurl = "https://glm.example/api/paas/v4"\napi = "openai"\n')
    s = load_settings(cfg, environ={})
    assert s.upstreams["glm"].url == "https://glm.example/api/paas/v4"
    assert s.upstreams["glm"].api == "openai"
    assert {"openai", "anthropic"} <= set(s.upstreams)


def test_toml_overrides_part_of_a_builtin(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[upstreams.anthropic]\nurl = "http://gateway.local/anthropic"\n')
    s = load_settings(cfg, environ={})
    assert s.upstreams["anthropic"].url == "http://gateway.local/anthropic"
    assert s.upstreams["anthropic"].api == "anthropic"


def test_environment_reaches_a_hyphenated_toml_mount(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[upstreams.my-glm]\nurl = "https://glm.example"\napi = "openai"\n')
    s = load_settings(cfg, environ={"TOOLWATCH_UPSTREAM_MY_GLM_URL": "http://127.0.0.1:1234"})
    assert s.upstreams["my-glm"].url == "http://127.0.0.1:1234"
    assert s.upstreams["my-glm"].api == "openai"
    assert "my_glm" not in s.upstreams


def test_environment_alone_can_declare_an_upstream() -> None:
    env = {"TOOLWATCH_UPSTREAM_LOCAL_URL": "http://127.0.0.1:5/v1", "TOOLWATCH_UPSTREAM_LOCAL_API": "openai"}
    s = load_settings(None, environ=env)
    assert s.upstreams["local"].url == "http://127.0.0.1:5/v1"
    assert s.upstreams["local"].api == "openai"


def test_environment_upstream_without_api_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.local\.api"):
        load_settings(None, environ={"TOOLWATCH_UPSTREAM_LOCAL_URL": "http://127.0.0.1:1"})


def test_non_url_upstream_is_rejected(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[upstreams.x]\nurl = "api.example.com"\napi = "openai"\n')
    with pytest.raises(ConfigError, match=r"upstreams\.x\.url.*http:// or https://"):
        load_settings(cfg, environ={})


def test_unknown_api_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.openai\.api"):
        load_settings(None, environ={"TOOLWATCH_UPSTREAM_OPENAI_API": "cohere"})


@pytest.mark.parametrize("name", sorted(RESERVED_MOUNTS))
def test_reserved_mount_names_are_rejected(tmp_path: Path, name: str) -> None:
    cfg = write_toml(tmp_path, f'[upstreams."{name}"]\nurl = "http://x"\napi = "openai"\n')
    with pytest.raises(ConfigError, match="reserved"):
        load_settings(cfg, environ={})


def test_reserved_mount_name_from_environment_is_rejected() -> None:
    env = {"TOOLWATCH_UPSTREAM_METRICS_URL": "http://x", "TOOLWATCH_UPSTREAM_METRICS_API": "openai"}
    with pytest.raises(ConfigError, match="reserved"):
        load_settings(None, environ=env)


def test_mount_name_with_a_slash_is_rejected(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[upstreams."a/b"]\nurl = "http://x"\napi = "openai"\n')
    with pytest.raises(ConfigError, match="single path segment"):
        load_settings(cfg, environ={})


def test_unknown_key_in_an_upstream_is_rejected(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[upstreams.openai]\nkey = "sk-..."\n')
    with pytest.raises(ConfigError, match=r"upstreams\.openai\.key"):
        load_settings(cfg, environ={})


# -- bad values ------------------------------------------------------------------------------------


def test_negative_port_is_rejected() -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings(None, environ={"TOOLWATCH_PORT": "-1"})


def test_non_numeric_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match="batch_rows"):
        load_settings(None, environ={"TOOLWATCH_BATCH_ROWS": "many"})


def test_every_problem_is_listed(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, 'port = 70000\nlog_level = "loud"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "port" in str(info.value) and "log_level" in str(info.value)


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "prot = 8000\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg, environ={})


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, environ={})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_settings(missing, environ={})
    assert str(missing) in str(info.value)


def test_too_small_limits_are_rejected() -> None:
    with pytest.raises(ConfigError, match="segment_bytes"):
        load_settings(None, environ={}, overrides={"segment_bytes": 10})


def test_upstream_variable_without_a_mount_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        load_settings(None, environ={"TOOLWATCH_UPSTREAM_URL": "http://127.0.0.1:1"})


@pytest.mark.parametrize("text", ['upstreams = {openai = "http://x"}\n', 'upstreams = "http://x"\n'])
def test_malformed_upstreams_table_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(write_toml(tmp_path, text), environ={})


def test_settings_survive_the_json_hand_over_to_the_recorder(tmp_path: Path) -> None:
    # `toolwatch serve` passes the validated settings to the recorder process as JSON
    cfg = write_toml(tmp_path, '[upstreams.my-glm]\nurl = "https://glm.example"\napi = "openai"\n')
    s = load_settings(cfg, environ={"TOOLWATCH_PORT": "9000"}, overrides={"store": f"chdb://{tmp_path}/rel/st"})
    again = Settings.model_validate_json(s.model_dump_json())
    assert again == s
    assert again.spool == s.spool == f"{tmp_path}/rel/st.spool"
