"""Run the fake provider as a process: ``python -m fakes.fake_llm --port 0 --ready-file F``."""

import argparse
import contextlib
import json
import signal
import threading

from . import FakeLLM

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--ready-file")
parser.add_argument("--no-record", action="store_true",
                    help="keep no log of requests (for long runs: see FakeLLM)")
args = parser.parse_args()
fake = FakeLLM(port=args.port, record=not args.no_record).start()
if args.ready_file:
    with open(args.ready_file + ".tmp", "w") as f:
        json.dump({"url": fake.url, "port": fake.port}, f)
    import os

    os.replace(args.ready_file + ".tmp", args.ready_file)
else:
    print(fake.url, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with contextlib.suppress(KeyboardInterrupt):
    stop.wait()
fake.stop()
