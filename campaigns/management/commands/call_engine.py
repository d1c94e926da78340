"""``manage.py call_engine``: one call engine (campaigns.call_engine), until SIGTERM."""

import time

from django.core.management.base import BaseCommand, CommandError

from campaigns.call_engine import STACK_CALLS, Engine, EngineConfig


class Command(BaseCommand):
    help = "Run one call engine: takes queued calls and dials them on the SIP trunk."

    def add_arguments(self, parser):
        parser.add_argument(
            "--index",
            type=int,
            default=0,
            help="Which engine of this host (0, 1, …): picks its SIP and RTP ports.",
        )
        parser.add_argument("--name", default="", help="The engine's name (the trace's Node).")
        parser.add_argument(
            "--channels",
            type=int,
            default=0,
            help=f"Calls at once (default CALL_ENGINE_CHANNELS, at most {STACK_CALLS}).",
        )
        parser.add_argument(
            "--seconds",
            type=float,
            default=0,
            help="Stop after this long (benchmarks); default: until SIGTERM.",
        )

    def handle(self, *args, index, name, channels, seconds, **options):
        config = EngineConfig.from_settings(index=index, name=name, channels=channels)
        if not 1 <= config.channels <= STACK_CALLS:
            raise CommandError(
                f"An engine holds 1 to {STACK_CALLS} calls (asked for {config.channels}): "
                "run more engines (CALL_ENGINES) for more channels."
            )
        try:
            engine = Engine(config)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        engine.run(until=time.monotonic() + seconds if seconds else None)
