"""Start Rasa's server with its auth token from the environment, never on the command line.

``rasa run --auth-token`` would put the token in every process listing on the host (``ps``, /proc). Run this
with the Rasa venv's Python instead of the ``rasa`` script: it takes the same arguments as ``rasa run`` and
adds the token from ``SJZS_RASA_TOKEN`` inside the process.
"""

import os
import sys


def main() -> None:
    token = os.environ.get("SJZS_RASA_TOKEN", "")
    if not token:
        sys.exit("SJZS_RASA_TOKEN 未设置：Rasa 的 HTTP API 必须有令牌")
    if any(arg.startswith("--auth-token") for arg in sys.argv[1:]):
        sys.exit("不要在命令行上传令牌：请用环境变量 SJZS_RASA_TOKEN")
    sys.argv = ["rasa", "run", *sys.argv[1:], "--auth-token", token]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
