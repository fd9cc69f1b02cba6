"""Several processes of each kind behind nginx, on PostgreSQL and Redis: the layout that spans machines.

::

    browser ──► nginx :api_port ─┬─► API 1 … N ──► nginx :rasa_port ──► Rasa 1 … N ──► nginx :action_port
                                 │                                                        │
                                 │        API 1 … N ◄── nginx :internal_port ◄── actions 1 … N ◄┘

Every process is told the nginx addresses, never another process's own, so the same layout spans machines by
pointing the upstreams at other hosts. What they share: PostgreSQL (the product's data, and Rasa's trackers in
its SQL tracker store), Redis (pushes between API instances, knowledge-base changes, Rasa's conversation locks).
``/internal/`` (what the action servers call) is served on its own nginx port only, never on the public one.
Socket.IO's long-polling needs every request of one connection on one instance: that path is balanced by client
address (``ip_hash``); everything else round robin.

Run it: ``.venv/app/bin/python -m devtools.cluster`` (``--copies N``); README.md, "Scaling out".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings, get_settings

from .prepare import rasa_model_path
from .stack import Service, Stack, processes, supervise, write_endpoints

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class Instance:
    api: int
    rasa: int
    actions: int


def default_instances(settings: Settings, copies: int) -> list[Instance]:
    """Ports next to the front ones: API 8001…, Rasa 5006…, action servers 5056…"""
    return [Instance(settings.api_port + i, settings.rasa_port + i, settings.action_port + i)
            for i in range(1, copies + 1)]


def nginx_conf(settings: Settings, instances: list[Instance], internal_port: int, run_dir: Path,
               as_root: bool) -> str:
    h = settings.host

    def upstream(name: str, ports: list[int], extra: str = "") -> str:
        servers = "".join(f"    server {h}:{p} max_fails=3 fail_timeout=2s;\n" for p in ports)
        # idle connections are dropped before the servers' own keep-alive ends (uvicorn and Sanic: 5 s), so nginx
        # never sends a request (a POST it may not retry) down a connection the server is closing
        return f"  upstream {name} {{\n{extra}{servers}    keepalive 32;\n    keepalive_timeout 2s;\n  }}\n"

    proxy = ("      proxy_http_version 1.1;\n      proxy_set_header Host $host;\n"
             "      proxy_set_header X-Forwarded-For $remote_addr;\n"
             "      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;\n"
             "      proxy_read_timeout 1h;\n      proxy_send_timeout 1h;\n      proxy_buffering off;\n")
    temp = "".join(f"  {kind}_temp_path {run_dir / kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                           "uwsgi", "scgi"))
    api_ports = [i.api for i in instances]
    return (
        ("user root;\n" if as_root else "")
        + f"worker_processes 1;\npid {run_dir / 'nginx.pid'};\ndaemon off;\nerror_log stderr warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  access_log off;\n"
        f"{temp}"
        f"  client_max_body_size {settings.evidence_max_bytes // (1024 * 1024) + 2}m;\n"
        "  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }\n"
        + upstream("api", api_ports)
        + upstream("api_by_client", api_ports, "    ip_hash;\n")
        + upstream("rasa", [i.rasa for i in instances])
        + upstream("actions", [i.actions for i in instances])
        + f"  server {{\n    listen {h}:{settings.api_port};\n"
        "    location /internal/ { return 404; }\n"
        f"    location /socket.io/ {{\n      proxy_pass http://api_by_client;\n{proxy}    }}\n"
        f"    location / {{\n      proxy_pass http://api;\n{proxy}    }}\n  }}\n"
        f"  server {{\n    listen {h}:{internal_port};\n    location = /nginx-alive {{ return 200 'ok'; }}\n"
        f"    location / {{\n      proxy_pass http://api;\n{proxy}    }}\n  }}\n"
        f"  server {{\n    listen {h}:{settings.rasa_port};\n    location / {{\n      proxy_pass http://rasa;\n{proxy}    }}\n  }}\n"
        f"  server {{\n    listen {h}:{settings.action_port};\n"
        f"    location / {{\n      proxy_pass http://actions;\n{proxy}    }}\n  }}\n"
        "}\n"
    )


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names when it is missing (Rasa's tracker store needs it to exist)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url).set(drivername="postgresql+psycopg")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}) is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


class Cluster(Stack):
    """``copies`` of the API, the Rasa server and the action server, and nginx in front of each kind."""

    def __init__(self, settings: Settings, copies: int = 2, instances: list[Instance] | None = None,
                 internal_port: int | None = None, echo: Callable[[str], None] | None = None,
                 rasa_model: Path | None = None):
        self.check(settings)
        self.instances = instances or default_instances(settings, copies)
        self.internal_port = internal_port or settings.api_port + 100
        super().__init__(settings, echo=echo, rasa_model=rasa_model)
        model = rasa_model or rasa_model_path(settings)
        run_dir = settings.var_dir / "run" / "cluster"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (run_dir / kind).mkdir(parents=True, exist_ok=True)
        conf = run_dir / "nginx.conf"
        conf.write_text(nginx_conf(settings, self.instances, self.internal_port, run_dir,
                                   as_root=os.geteuid() == 0),
                        encoding="utf-8")
        endpoints = write_endpoints(settings)  # the action endpoint is nginx's; trackers and locks are shared
        # ready when the whole path answers through nginx: an API instance reaches a Rasa server and an action
        # server through their nginx ports (/healthz is 200 only then)
        front = Service("nginx", [NGINX, "-p", str(run_dir), "-c", str(conf), "-e", "stderr"],
                        f"{settings.api_url}/healthz")
        self.services = [front]
        internal = {"SJZS_API_PORT": str(self.internal_port)}  # the action servers call /internal/ here
        for n, inst in enumerate(self.instances, start=1):
            api, rasa, actions = processes(settings, model, endpoints,
                                           (inst.api, inst.rasa, inst.actions), suffix=f"-{n}")
            api.env = {"SJZS_KB_INDEX_DIR": str(self._index_copy(n))}  # each instance saves its own index
            actions.env = internal
            self.services += [api, rasa, actions]

    @staticmethod
    def check(settings: Settings) -> None:
        """Refuse a layout whose instances could not share their state."""
        if not settings.sqlalchemy_url.startswith("postgresql"):
            raise ValueError("多实例部署需要 PostgreSQL：请设置 SJZS_DATABASE_URL")
        if not settings.redis_url:
            raise ValueError("多实例部署需要 Redis：请设置 SJZS_REDIS_URL")
        if not settings.rasa_tracker_url:
            raise ValueError("多个 Rasa 服务需要共享的对话存储：请设置 SJZS_RASA_TRACKER_URL")

    def _index_copy(self, n: int) -> Path:
        """The prepared index, copied for instance ``n`` (so it starts without re-embedding every phrasing)."""
        mine = self.settings.var_dir / "run" / "cluster" / f"index-{n}"
        if not mine.exists() and self.settings.index_dir.exists():
            shutil.copytree(self.settings.index_dir, mine)
        return mine

    def start(self, timeout: float = 300.0) -> None:
        ensure_database(self.settings.rasa_tracker_url)
        super().start(timeout)

    def urls(self) -> dict[str, str]:
        urls = super().urls()
        urls["instances"] = "、".join(f"API {s.health_url.rsplit('/', 1)[0]}" for s in self.services
                                     if s.name.startswith("api-"))
        return urls


def main() -> int:
    from .prepare import prepare

    parser = argparse.ArgumentParser(description="多实例部署：nginx 后面各 N 个 API、Rasa 服务和动作服务")
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    settings = get_settings()
    try:
        Cluster.check(settings)
    except ValueError as exc:
        print(f"==> {exc}", file=sys.stderr)
        return 2
    prepare(settings)
    return supervise(Cluster(settings, copies=args.copies), f"启动 nginx 和各 {args.copies} 个 API、Rasa 服务、动作服务…",
                     lambda urls: (f"    入口（nginx）  {urls['api']}\n    演示商家后台  {urls['demo']}\n"
                                   f"    客服工作台    {urls['console']}\n    各实例        {urls['instances']}\n"))


if __name__ == "__main__":
    sys.exit(main())
