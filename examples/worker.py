"""A long-running worker, written the way real code is: it knows nothing of any
observability sensor. It takes research tasks one after another and answers
each with GPT, until it runs out of tasks (or something stops it).

    python examples/worker.py [TASKS] [PAUSE_SECONDS] [MODEL]
"""

from __future__ import annotations

import sys
import time

import openai

TOPICS = ["indexing", "sharding", "replication", "compaction", "caching", "quantization"]


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
    model = sys.argv[3] if len(sys.argv) > 3 else "gpt-4o"
    client = openai.OpenAI()
    for number in range(1, tasks + 1):
        topic = TOPICS[number % len(TOPICS)]
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"Task {number}: explain {topic} briefly."}],
        )
        print(f"worker: task {number} ({topic}) answered by {response.model}", flush=True)
        time.sleep(pause)
    print(f"worker: all {tasks} tasks done", flush=True)


if __name__ == "__main__":
    main()
