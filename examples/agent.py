"""A small research agent, written the way real code is: it knows nothing of
any observability sensor. It reads its providers' endpoints and keys from the
usual environment variables (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, ...).

It plans with Claude, drafts with GPT (streamed), embeds its notes, asks
several questions concurrently with asyncio, and summarises through litellm.
"""

from __future__ import annotations

import asyncio

import anthropic
import litellm
import openai

QUESTION = "Which three factors matter most when choosing a vector database?"


def plan(client: anthropic.Anthropic) -> str:
    message = client.messages.create(
        model="claude-haiku-5-5",
        max_tokens=200,
        system="You are a meticulous research planner.",
        messages=[{"role": "user", "content": f"Plan research steps for: {QUESTION}"}],
    )
    return "".join(block.text for block in message.content if block.type == "text")


def draft(client: openai.OpenAI, steps: str) -> str:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Write crisp technical prose."},
            {"role": "user", "content": f"Draft an answer following these steps:\n{steps}"},
        ],
        stream=True,
    )
    parts = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def critique(client: anthropic.Anthropic, text: str) -> str:
    with client.messages.stream(
        model="claude-sonnet-5-5",
        max_tokens=300,
        messages=[{"role": "user", "content": f"Critique this draft:\n{text}"}],
    ) as stream:
        return "".join(stream.text_stream)


def embed_notes(client: openai.OpenAI, notes: list[str]) -> int:
    result = client.embeddings.create(model="text-embedding-3-small", input=notes)
    return len(result.data)


async def follow_ups(topics: list[str]) -> list[str]:
    client = openai.AsyncOpenAI()

    async def ask(topic: str) -> str:
        response = await client.responses.create(
            model="gpt-4o-mini", input=f"One sentence on {topic} for vector databases."
        )
        return response.output_text

    return await asyncio.gather(*(ask(topic) for topic in topics))


async def summarise(text: str) -> str:
    response = await litellm.acompletion(
        model="anthropic/claude-haiku-5-5",
        messages=[{"role": "user", "content": f"Summarise in one line:\n{text}"}],
        max_tokens=60,
    )
    return str(response.choices[0].message.content)


def headline(text: str) -> str:
    chunks = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": f"A headline for:\n{text}"}],
        stream=True,
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


def main() -> None:
    claude = anthropic.Anthropic()
    gpt = openai.OpenAI()
    steps = plan(claude)
    text = draft(gpt, steps)
    review = critique(claude, text)
    count = embed_notes(gpt, [steps, text, review])
    extras = asyncio.run(follow_ups(["latency", "recall", "cost"]))
    summary = asyncio.run(summarise(text + " ".join(extras)))
    title = headline(summary)
    print(f"agent: planned, drafted, critiqued, embedded {count} notes, "
          f"asked {len(extras)} follow-ups; headline: {title[:60]!r}")


if __name__ == "__main__":
    main()
