"""The API's one settings object, read from the environment (and a git-ignored .env)."""

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str
    db_pool_min_size: int = 2
    db_pool_max_size: int = 10


@lru_cache
def get_settings() -> Settings:
    return Settings()
