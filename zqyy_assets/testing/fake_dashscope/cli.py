"""``python -m zqyy_assets.testing.fake_dashscope``: run the fake until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from zqyy_assets.testing.fake_dashscope.admin import demo_env
from zqyy_assets.testing.fake_dashscope.server import FakeDashScope


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zqyy_assets.testing.fake_dashscope",
        description="Run the fake DashScope Application API until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between stream chunks")
    parser.add_argument("--chunks", type=int, default=4, help="chunks per streamed answer")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any bearer key)")
    parser.add_argument("--qps", type=float, default=None, help="the provider's limit: 429 above this a second")
    parser.add_argument("--print-env", action="store_true", help="print shell exports pointing the project here")
    args = parser.parse_args(argv)

    fake = FakeDashScope(
        args.host,
        args.port,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        chunks=args.chunks,
        api_key=args.api_key,
        qps=args.qps,
    )
    if args.print_env:
        env = demo_env(fake.base_url)
        if args.api_key:
            env["DASHSCOPE_API_KEY"] = args.api_key
        for key, value in env.items():
            print(f"export {key}='{value}'")
        sys.stdout.flush()
    print(f"fake DashScope listening on {fake.base_url}", file=sys.stderr, flush=True)

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()
