"""Sign a widget token for a merchant, as the host site (merchant back office) would.

Run: ``python -m devtools.token M10001 [--minutes 30]``; prints the token.
"""

from __future__ import annotations

import argparse
import sys

from api.security import create_merchant_token
from core.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="为商家签发聊天窗口用的身份凭证")
    parser.add_argument("merchant", help="商家编号，例如 M10001")
    parser.add_argument("--minutes", type=int, default=30)
    args = parser.parse_args(argv)
    print(create_merchant_token(args.merchant, get_settings().widget_secret, args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
