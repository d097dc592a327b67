"""Settings for every peerlearn process, read from the environment.

One object so the worker, the API, the CLI and the supervisor agree on every
address and path. Embedded defaults live under ``.peerlearn/``; setting
``DATABASE_URL`` or ``TEMPORAL_ADDRESS`` switches the supervisor from starting
the embedded servers to using external ones.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEERLEARN_", extra="ignore")

    home: Path = Field(
        default=Path(".peerlearn"),
        description="State folder: embedded PostgreSQL data, Temporal SQLite file, model, logs.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PEERLEARN_DATABASE_URL"),
        description="External PostgreSQL (with pgvector). Unset: embedded server in HOME/pg.",
    )
    temporal_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "PEERLEARN_TEMPORAL_ADDRESS"),
        description="External Temporal frontend host:port. Unset: embedded dev server.",
    )
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    temporal_api_key: str | None = None
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    task_queue: str = "peerlearn"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    model_dir: Path | None = Field(
        default=None,
        description=(
            "sentence-transformers folder of multilingual-e5-small. "
            "Unset: HOME/models/multilingual-e5-small."
        ),
    )
    load_demo: bool = True
    log_level: str = Field(
        default="INFO", description="Worker log level; the API logs warnings unless this is set."
    )
    max_body_bytes: int = 1_000_000
    max_note_chars: int = 50_000
    max_statements_per_note: int = 500
    max_page_size: int = 200
    # Notes uploaded as documents and imports of past programmes (issue 12).
    max_document_bytes: int = 10_000_000
    max_document_pages: int = 200
    max_import_bytes: int = 50_000_000
    # E-mail (issue 13). SMTP host unset: `peerlearn run` starts the embedded mail
    # catcher on 127.0.0.1:mail_catcher_port and the worker sends there.
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, description="Default 587 with STARTTLS, else 25.")
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "peerlearn <peerlearn@localhost>"
    smtp_starttls: bool = False
    mail_catcher_port: int = 8025
    # Webhook targets (issue 10, SSRF): by default only https to public addresses.
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhooks to loopback and private ranges (on-premises receivers).",
    )
    webhook_allow_http: bool = Field(
        default=False, description="Allow plain-http webhook URLs (development only)."
    )

    @property
    def embedded_mail_catcher(self) -> bool:
        return self.smtp_host is None

    @property
    def smtp_address(self) -> tuple[str, int]:
        """Where the worker sends mail: the configured server, else the embedded catcher."""
        if self.smtp_host is None:
            return "127.0.0.1", self.mail_catcher_port
        return self.smtp_host, self.smtp_port or (587 if self.smtp_starttls else 25)

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.home / "models" / "multilingual-e5-small"

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def temporal_db(self) -> Path:
        return self.home / "temporal.db"

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
