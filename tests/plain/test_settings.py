from pos_core.settings import Settings, load_settings


def test_environment_overrides_the_config_section():
    section = {"redis_url": "redis://conf:6379/0", "access_token_ttl": "600"}
    environ = {"POS_API_REDIS_URL": "redis://env:6379/1", "UNRELATED": "1"}
    settings = load_settings(section, environ)
    assert settings.redis_url == "redis://env:6379/1"
    assert settings.access_token_ttl == 600
    assert settings.refresh_token_ttl == Settings().refresh_token_ttl


def test_empty_values_keep_defaults():
    settings = load_settings({"jwt_secret": ""}, {"POS_API_ACCESS_TOKEN_TTL": ""})
    assert settings == Settings()


def test_websocket_idle_timeout_follows_the_ping_interval_unless_set():
    assert Settings().ws_idle_seconds == 2 * Settings().ws_ping_interval + 10
    assert load_settings({"ws_ping_interval": "5"}, {}).ws_idle_seconds == 20
    settings = load_settings({"ws_ping_interval": "5"}, {"POS_API_WS_IDLE_TIMEOUT": "7"})
    assert (settings.ws_ping_interval, settings.ws_idle_seconds) == (5, 7)
