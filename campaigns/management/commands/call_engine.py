"""``manage.py call_engine``: one call engine (campaigns.call_engine) until SIGTERM, or, with
``--engines N``, N of them as child processes (each its own SIP stack and ports), started
again when one dies."""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from campaigns.call_engine import STACK_CALLS, Engine, EngineConfig


class Command(BaseCommand):
    help = "Run call engines: they take queued calls and dial them on the SIP trunk."

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
            "--engines",
            type=int,
            default=1,
            help="Run this many engines (indexes from --index on), each in its own process.",
        )
        parser.add_argument(
            "--seconds",
            type=float,
            default=0,
            help="Stop after this long (benchmarks); default: until SIGTERM.",
        )

    def handle(self, *args, index, name, channels, engines, seconds, **options):
        if engines < 1:
            raise CommandError("--engines must be 1 or more.")
        if engines > 1:
            return self._supervise(index, engines, channels)
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

    def _supervise(self, first: int, count: int, channels: int) -> None:
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

        def start(index: int) -> subprocess.Popen:
            argv = [sys.executable, sys.argv[0], "call_engine", "--index", str(index)]
            if channels:
                argv += ["--channels", str(channels)]
            return subprocess.Popen(argv)

        procs = {index: start(index) for index in range(first, first + count)}
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            time.sleep(1)
            for index, proc in list(procs.items()):
                if proc.poll() is not None and not stopping:
                    self.stderr.write(f"call engine {index} exited ({proc.returncode}); again")
                    procs[index] = start(index)
        for proc in procs.values():
            proc.wait()
