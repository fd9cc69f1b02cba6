"""Start, watch and stop the three processes: API, Rasa server, action server.

``python -m devtools.stack`` prepares what is missing, starts all three on
127.0.0.1, waits until each is healthy, prints the URLs and streams every
log line with the process's name in front.  Ctrl-C stops all three; if one
fails to start or dies, it says which and why and stops the others.

The end-to-end tests use the same :class:`Stack` with their own ports and database.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.settings import REPO_ROOT, Settings, get_settings

from .prepare import rasa_env, rasa_model_path

APP_BIN = REPO_ROOT / ".venv" / "app" / "bin"
RASA_BIN = REPO_ROOT / ".venv" / "rasa" / "bin"
COLOURS = {"api": "\033[36m", "rasa": "\033[35m", "actions": "\033[33m"}
RESET = "\033[0m"


class StackError(RuntimeError):
    def __init__(self, service: str, reason: str, log_tail: list[str]):
        self.service, self.reason, self.log_tail = service, reason, log_tail
        tail = "\n".join(f"    {line}" for line in log_tail[-15:])
        super().__init__(f"{service} {reason}\n  最后的日志：\n{tail}" if tail else f"{service} {reason}")


@dataclass
class Service:
    name: str
    argv: list[str]
    health_url: str
    is_healthy: Callable[[int, bytes], bool] = lambda status, _body: status == 200
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's environment, for this one only
    proc: subprocess.Popen | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=80))
    reader: threading.Thread | None = None

    def check(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as resp:
                return self.is_healthy(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            return self.is_healthy(exc.code, exc.read())
        except (OSError, ValueError):
            return False


def _api_ready(_status: int, body: bytes) -> bool:
    """The API is ready once its own parts work; Rasa and the action server are checked on their own."""
    try:
        parts = json.loads(body)["components"]
    except (ValueError, KeyError):
        return False
    return all(parts[p]["status"] == "ok" for p in ("api", "database", "model", "index"))


def child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every child gets: the settings as SJZS_ variables, quiet Rasa and TensorFlow."""
    env = rasa_env(settings)
    env.update({
        "SJZS_HOST": settings.host,
        "SJZS_API_PORT": str(settings.api_port),
        "SJZS_RASA_PORT": str(settings.rasa_port),
        "SJZS_ACTION_PORT": str(settings.action_port),
        "SJZS_DATABASE_URL": settings.sqlalchemy_url,
        "SJZS_VAR_DIR": str(settings.var_dir),
        "SJZS_KB_INDEX_DIR": str(settings.index_dir),
        # Empty: the API serves what the tuning job promoted and follows later promotions without a restart.
        "SJZS_EMBEDDING_MODEL": settings.embedding_model,
        "SJZS_INTERNAL_TOKEN": settings.internal_token,
        "SJZS_RASA_TOKEN": settings.rasa_token,
        "SJZS_REDIS_URL": settings.redis_url,
        "SJZS_RASA_TRACKER_URL": settings.rasa_tracker_url,
        "SJZS_CHAT_PER_MINUTE": str(settings.chat_per_minute),
        "SJZS_UPLOADS_PER_MINUTE": str(settings.uploads_per_minute),
        "SJZS_LOGIN_PER_MINUTE": str(settings.login_per_minute),
        "SANIC_HOST": settings.host,  # the action server has no interface flag
    })
    env.update(extra or {})
    return env


def write_endpoints(settings: Settings, name: str = "endpoints.yml") -> Path:
    """Rasa's endpoints file for these settings (Rasa 3.6 does not expand variables in it): the action server,
    and with ``rasa_tracker_url`` / ``redis_url`` set, the shared tracker store and lock store that let several
    Rasa servers take turns of one conversation."""
    path = settings.var_dir / "run" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    template = (REPO_ROOT / "bot" / "endpoints.yml").read_text(encoding="utf-8")
    text = template.replace("http://127.0.0.1:5055/webhook", f"{settings.action_server_url}/webhook")
    if settings.rasa_tracker_url:
        db = urlsplit(settings.rasa_tracker_url)
        text += ("\ntracker_store:\n  type: SQL\n  dialect: postgresql\n"
                 f"  url: {json.dumps(db.hostname or '127.0.0.1')}\n  port: {db.port or 5432}\n"
                 f"  db: {json.dumps(db.path.lstrip('/'))}\n  username: {json.dumps(unquote(db.username or ''))}\n"
                 f"  password: {json.dumps(unquote(db.password or ''))}\n")
    if settings.redis_url:
        redis = urlsplit(settings.redis_url)
        text += ("\nlock_store:\n  type: redis\n"
                 f"  url: {json.dumps(redis.hostname or '127.0.0.1')}\n  port: {redis.port or 6379}\n"
                 f"  db: {int(redis.path.lstrip('/') or 0)}\n  password: {json.dumps(unquote(redis.password or ''))}\n"
                 "  key_prefix: sjzs\n")
    path.write_text(text, encoding="utf-8")
    return path


def processes(s: Settings, model: Path, endpoints: Path, ports: tuple[int, int, int] | None = None,
              suffix: str = "") -> list[Service]:
    """API, Rasa server and action server listening on ``ports`` (api, rasa, actions; default: the settings'
    own). What each one calls comes from the environment the stack gives them all."""
    api, rasa, actions = ports or (s.api_port, s.rasa_port, s.action_port)
    url = f"http://{s.host}:{{}}".format
    return [
        Service(f"api{suffix}", [str(APP_BIN / "uvicorn"), "api.main:app", "--host", s.host, "--port", str(api),
                                 "--no-access-log"], f"{url(api)}/healthz", _api_ready),
        Service(f"rasa{suffix}", [str(RASA_BIN / "python"), "bot/serve_rasa.py", "--enable-api", "-i", s.host,
                                  "-p", str(rasa), "-m", str(model), "--endpoints", str(endpoints),
                                  "--credentials", "bot/credentials.yml"],  # the token travels in the environment
                f"{url(rasa)}/status?token={s.rasa_token}"),
        Service(f"actions{suffix}", [str(APP_BIN / "python"), "-m", "rasa_sdk", "--actions", "actions",
                                     "-p", str(actions)], f"{url(actions)}/health"),
    ]


class Stack:
    def __init__(self, settings: Settings, env: dict[str, str] | None = None,
                 echo: Callable[[str], None] | None = None, rasa_model: Path | None = None):
        self.settings = settings
        self.env = child_env(settings, env)
        self.echo = echo or (lambda line: print(line, flush=True))
        model = rasa_model or rasa_model_path(settings)
        self.services = processes(settings, model, write_endpoints(settings))

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 240.0) -> None:
        """Start all three and wait until each is healthy; on failure stop them all and raise."""
        try:
            for svc in self.services:
                self._spawn(svc)
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, svc: Service) -> None:
        svc.proc = subprocess.Popen(
            svc.argv, cwd=REPO_ROOT, env={**self.env, **svc.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # its own process group: we stop it whole
            preexec_fn=_die_with_parent,
        )
        svc.reader = threading.Thread(target=self._pump, args=(svc,), daemon=True, name=f"log-{svc.name}")
        svc.reader.start()

    def _pump(self, svc: Service) -> None:
        colour = COLOURS.get(svc.name.split("-")[0], "") if sys.stdout.isatty() else ""
        reset = RESET if colour else ""
        prefix = f"{colour}{svc.name:<8}|{reset} "
        assert svc.proc and svc.proc.stdout
        for raw in iter(svc.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            svc.tail.append(line)
            self.echo(prefix + line)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending:
            self.raise_if_dead()
            pending = [svc for svc in pending if not svc.check()]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = "、".join(s.name for s in pending)
                raise StackError(names, f"在 {timeout:.0f} 秒内没有就绪", list(pending[0].tail))
            time.sleep(0.5)

    def raise_if_dead(self) -> None:
        for svc in self.services:
            if svc.proc is not None and svc.proc.poll() is not None:
                if svc.reader:
                    svc.reader.join(timeout=2)
                raise StackError(svc.name, f"已退出（退出码 {svc.proc.returncode}）", list(svc.tail))

    def watch(self) -> None:
        """Block while all three run; raise StackError when one dies."""
        while True:
            self.raise_if_dead()
            time.sleep(0.5)

    def stop(self, grace: float = 10.0) -> None:
        running = [s for s in self.services if s.proc is not None and s.proc.poll() is None]
        for svc in running:  # the leader first: it shuts its own workers down cleanly
            _signal(svc.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for svc in running:
            try:
                svc.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(svc.proc, signal.SIGKILL)
                svc.proc.wait(timeout=5)
        for svc in self.services:  # leftovers of a group whose leader already exited
            if svc.proc is not None:
                _signal_group(svc.proc, signal.SIGKILL)
                _close_pipe(svc)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def stop_service(self, name: str) -> None:
        """Stop one process (tests use it to see how the others cope)."""
        svc = self.service(name)
        if svc.proc is not None and svc.proc.poll() is None:
            _signal(svc.proc, signal.SIGTERM)
            try:
                svc.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(svc.proc, signal.SIGKILL)
                svc.proc.wait(timeout=5)
        if svc.proc is not None:
            _signal_group(svc.proc, signal.SIGKILL)
            _close_pipe(svc)

    def start_service(self, name: str, timeout: float = 120.0) -> None:
        svc = self.service(name)
        self._spawn(svc)
        deadline = time.monotonic() + timeout
        while not svc.check():
            if svc.proc.poll() is not None or time.monotonic() > deadline:
                raise StackError(name, "重启失败", list(svc.tail))
            time.sleep(0.3)

    def pids(self) -> dict[str, int]:
        return {s.name: s.proc.pid for s in self.services if s.proc is not None}

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {"api": s.api_url, "docs": f"{s.api_url}/docs", "health": f"{s.api_url}/healthz",
                "demo": f"{s.api_url}/demo", "console": f"{s.api_url}/console",
                "workbench": f"{s.api_url}/workbench", "analytics": f"{s.api_url}/console/analytics",
                "widget": f"{s.api_url}/widget/sjzs-widget.js",
                "rasa": s.rasa_url, "actions": s.action_server_url}


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the runner itself is killed, so nothing is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _close_pipe(svc: Service) -> None:
    """The log pipe ends when the process group is gone: let the reader drain it, then close it."""
    if svc.reader is not None:
        svc.reader.join(timeout=5)
    if svc.proc is not None and svc.proc.stdout is not None and (svc.reader is None or not svc.reader.is_alive()):
        svc.proc.stdout.close()


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def demo_accounts(settings: Settings) -> str:
    """The demo logins set-up created, and how to chat as a demo merchant from the shell."""
    from api.seed import SEED_DIR, load_yaml

    demo = load_yaml(SEED_DIR / "demo.yml")
    staff = "\n".join(f"      {u['username']:<10} {u['role']:<10} {u['display_name']}" for u in demo["staff"])
    shops = "、".join(f"{m['code']} {m['name']}" for m in demo["merchants"])
    return (f"==> 演示账号（密码均为 {settings.demo_password}，POST {settings.api_url}/api/auth/login）：\n{staff}\n"
            f"    演示商家：{shops}\n"
            f"    以商家身份对话：TOKEN=$(.venv/app/bin/python -m devtools.token M10001)\n"
            f"      curl -s {settings.api_url}/api/chat -H \"Authorization: Bearer $TOKEN\" "
            f"-H 'Content-Type: application/json' -d '{{\"text\": \"保证金怎么退\"}}'")


def supervise(stack: Stack, starting: str, ready: Callable[[dict[str, str]], str]) -> int:
    """Start ``stack``, print where everything is, keep watch until Ctrl-C or a process dies."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    t0 = time.monotonic()
    try:
        print(f"==> {starting}", flush=True)
        stack.start()
        print(f"\n==> 全部就绪（{time.monotonic() - t0:.0f} 秒）：", flush=True)
        print(ready(stack.urls()), flush=True)
        print(demo_accounts(stack.settings), flush=True)
        print("    按 Ctrl-C 停止全部进程。\n", flush=True)
        stack.watch()
    except KeyboardInterrupt:
        print("\n==> 正在停止…", flush=True)
        stack.stop()
        return 0
    except StackError as exc:
        print(f"\n==> 启动失败：{exc}", file=sys.stderr, flush=True)
        stack.stop()
        return 1
    return 0


def main() -> int:
    from .prepare import prepare

    settings = get_settings()
    prepare(settings)
    return supervise(Stack(settings), "启动 API、Rasa 服务和动作服务…", lambda urls: (
        f"    演示商家后台  {urls['demo']}   ← 打开它，选一个商家，点右下角「助手」开始对话\n"
        f"    客服工作台    {urls['console']}   ← 用 agent01 / agent02 登录，接待转人工的商家\n"
        f"    知识库工作台  {urls['workbench']}   ← 用 editor01 登录，维护 FAQ、处理未解决问题\n"
        f"    服务数据      {urls['analytics']}\n"
        f"    聊天窗口脚本  {urls['widget']}\n"
        f"    API           {urls['api']}\n    API 文档      {urls['docs']}\n"
        f"    健康检查      {urls['health']}\n    Rasa 服务     {urls['rasa']}\n"
        f"    动作服务      {urls['actions']}\n"))


if __name__ == "__main__":
    sys.exit(main())
