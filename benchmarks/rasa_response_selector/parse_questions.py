"""Parse questions with a trained Rasa NLU model (runs in the Rasa venv, called by project.py).

Usage: ``.venv/rasa/bin/python benchmarks/rasa_response_selector/parse_questions.py MODEL IN.json OUT.json``
where IN.json is a list of texts; OUT.json gets, per text, the top intent with its confidence and the
ranking of the ``faq`` response selector as ``[[key, confidence], ...]`` (the ``faq/`` prefix removed).
"""

import asyncio
import json
import logging
import os
import sys
import time

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def summarise(parsed: dict) -> dict:
    selector = (parsed.get("response_selector") or {}).get("faq") or {}
    ranking = [[r["intent_response_key"].split("/", 1)[-1], float(r["confidence"])]
               for r in selector.get("ranking") or []]
    intent = parsed.get("intent") or {}
    return {"intent": intent.get("name"), "confidence": float(intent.get("confidence") or 0.0), "ranking": ranking}


async def main(model: str, src: str, dst: str) -> None:
    from rasa.core.agent import Agent

    texts = json.load(open(src, encoding="utf-8"))
    agent = Agent.load(model)
    await agent.parse_message("你好")  # warm-up: the first parse builds the graph
    started = time.perf_counter()
    out = [summarise(await agent.parse_message(t)) for t in texts]
    per_query_ms = (time.perf_counter() - started) * 1000 / max(len(texts), 1)
    json.dump({"results": out, "ms_per_query": per_query_ms}, open(dst, "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        from rasa.utils.log_utils import configure_structlog

        configure_structlog(logging.WARNING)
    except ImportError:
        pass
    asyncio.run(main(*sys.argv[1:4]))
