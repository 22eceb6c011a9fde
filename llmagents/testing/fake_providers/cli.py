"""``llmagents fake-provider``: run one fake provider so users can rehearse their fallback settings.

Point a pool's ``baseURL`` at it, give it faults (``--fail-rate 0.3 --status 429:2,500``,
``--outage 30:60``), and watch the engine retry, back off and fall back before production
does it for real. The counters are at ``GET /_fake/stats``; ``POST /_fake/faults`` with a JSON
object of fault-plan fields changes the faults while it runs (``{"outage": true}``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
from typing import Any

from pydantic import ValidationError

from llmagents.testing.fake_providers import FAKE_TYPES, FaultPlan

logger = logging.getLogger(__name__)

_FAULT_HELP = (
    "comma-separated faults: an HTTP status (429, 500, 503, 529), a status with Retry-After "
    "seconds (429:2) or as an HTTP date (429:2:date), or one of hang, reset, malformed, "
    "truncated, wrong_shape, break, stream_error"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        required=True,
        choices=sorted(FAKE_TYPES),
        help="Wire protocol to speak (onnx sidecars speak openai).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to listen on; loopback unless --allow-remote."
    )
    parser.add_argument("--port", type=int, default=8081, help="Port to listen on (0: any free).")
    parser.add_argument("--allow-remote", action="store_true", help="Allow a non-loopback --host.")
    parser.add_argument(
        "--api-key",
        default=None,
        help="Key the fake requires, checked like the real API; "
        "without it any key (or none) is accepted.",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="A model name the fake knows (repeatable); others get 404.",
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        help="Share of calls (0-1) that fail with a fault drawn from --status.",
    )
    parser.add_argument(
        "--status",
        "--fail-with",
        dest="fail_with",
        default="500",
        help=f"Faults random failures draw from: {_FAULT_HELP}.",
    )
    parser.add_argument(
        "--script",
        default="",
        help=f"Faults for the next calls, one each, in order: {_FAULT_HELP}; "
        "'ok' lets one call through.",
    )
    parser.add_argument(
        "--latency-ms",
        default=None,
        help="Delay before each answer: 50 (fixed), 50:200 (uniform), "
        "100~20 (normal, mean~stddev).",
    )
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="Pause between stream chunks."
    )
    parser.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START:END",
        help="Seconds since start during which every call fails "
        "(repeatable; END may be empty for open-ended).",
    )
    parser.add_argument(
        "--outage-status",
        default="503",
        help="What calls get during an outage (one fault, as in --status).",
    )
    parser.add_argument(
        "--stream-break-after",
        type=int,
        default=2,
        help="Chunks a stream delivers before break or stream_error.",
    )
    parser.add_argument("--hang-seconds", type=float, default=300.0, help="How long a hang lasts.")
    parser.add_argument("--seed", type=int, default=None, help="Seed for repeatable faults.")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="Stop after this many seconds (default: until interrupted).",
    )
    parser.add_argument("--access-log", action="store_true", help="Log every request.")


def build_plan(args: argparse.Namespace) -> FaultPlan:
    """The fault plan the flags describe; ``ValueError`` explains a bad flag."""
    fields: dict[str, Any] = {
        "seed": args.seed,
        "fail_rate": args.fail_rate,
        "fail_with": _split(args.fail_with),
        "script": _split(args.script),
        "chunk_delay_ms": args.chunk_delay_ms,
        "outage_windows": args.outage,
        "outage_fault": args.outage_status,
        "stream_break_after": args.stream_break_after,
        "hang_seconds": args.hang_seconds,
    }
    if args.latency_ms is not None:
        fields["latency"] = args.latency_ms
    try:
        return FaultPlan.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None


def main(args: argparse.Namespace) -> int:
    if not args.allow_remote and not _is_loopback(args.host):
        logger.error("--host %s is not a loopback address; add --allow-remote to use it", args.host)
        return 2
    try:
        plan = build_plan(args)
    except ValueError as exc:
        logger.error("invalid fault settings: %s", exc)
        return 2
    server = FAKE_TYPES[args.protocol](
        api_key=args.api_key,
        models=args.models,
        faults=plan,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
    )
    asyncio.run(_serve(server, args.duration))
    return 0


async def _serve(server: Any, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    # One line on stdout that scripts can wait for and read the URL from.
    print(f"fake {server.protocol} provider ready at {server.base_url}", flush=True)
    logger.info(
        "models: %s; key required: %s; faults: %s",
        ", ".join(server.models),
        "yes" if server.api_key else "no",
        server.faults.model_dump_json(exclude_defaults=True),
    )
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass
    finally:
        logger.info("stopping; stats: %s", server.stats.to_dict())
        await server.stop()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
