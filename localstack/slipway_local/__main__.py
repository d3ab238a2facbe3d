"""python -m slipway_local up | down | status | serve | env"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slipway_local.processes import StackError
from slipway_local.stack import Stack, StackConfig


def main() -> int:
    parser = argparse.ArgumentParser(prog="slipway_local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "serve", "env"])
    parser.add_argument("--state", type=Path, help="state folder (default .slipway/stack)")
    args = parser.parse_args()
    config = StackConfig.from_env(args.state)
    stack = Stack(StackConfig.saved(config.state_dir) or config)
    try:
        if args.command == "up":
            env = stack.up()
            print(f"Slipway local stack is up. Endpoints are in {stack.config.env_file}:")
            for key in ("SLIPWAY_API_URL", "AWS_ENDPOINT_URL", "DATABASE_URL"):
                print(f"  {key}={env[key]}")
            print(f"  logs: {stack.config.state_dir / 'logs'}    stop it: make down")
        elif args.command == "down":
            stack.down()
            print("Slipway local stack stopped; its data is gone.")
        elif args.command == "status":
            for part, state in stack.status().items():
                print(f"{part:11} {state}")
        elif args.command == "env":
            for key, value in stack.client_env().items():
                print(f"{key}={value}")
        else:
            stack.serve()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
