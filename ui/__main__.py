"""``python -m aquarium.ui``: the dashboard in the foreground (the options of ``aquarium ui``).

The command line sits above every part and the dashboard may not import it, so this entry
point parses its few options itself.
"""

from __future__ import annotations

import argparse
import os
import sys

from aquarium.agent.errors import AquariumError

from .server import DEFAULT_PORT, UiSettings, dashboard_for, serve_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aquarium.ui", description="Serve the Aquarium dashboard.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AQUARIUM_UI_PORT", DEFAULT_PORT)))
    parser.add_argument("--host", default=os.environ.get("AQUARIUM_UI_HOST", "127.0.0.1"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--base-dir", "--data-dir", dest="data_dir", default=os.environ.get("AQUARIUM_DATA_DIR"))
    source.add_argument("--api", dest="api_url", default=os.environ.get("AQUARIUM_API_URL"))
    parser.add_argument("--redis", "--redis-url", dest="redis_url", default=os.environ.get("AQUARIUM_REDIS_URL"))
    parser.add_argument("--prefix", default=os.environ.get("AQUARIUM_PREFIX", "aquarium"))
    args = parser.parse_args(argv)
    try:
        settings = UiSettings.from_env(host=args.host, port=args.port)
        settings.check_bind()
        dashboard = dashboard_for(args.api_url or args.data_dir or "aquarium_data", args.redis_url, args.prefix)
    except AquariumError as e:
        sys.stderr.write(f"python -m aquarium.ui: {e}\n")
        return 1
    serve_forever(dashboard, settings, say=_to_stderr)
    return 0


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
