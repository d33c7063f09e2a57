"""Every provider the sensor patches, named once: what triggers its patching and
what is patched (stdlib only, imports nothing: the ``.pth`` boot's import
finder reads ``HOOK_MODULES`` at interpreter start).

A provider is a table of rows ``(module, attribute path, wrapper kind)``:
``attribute path`` is ``"Class.method"`` or a module function's name, and
``wrapper kind`` names one of the wrappers in its interceptor module's
``WRAPPERS`` (``flightdeck_sensor.interceptors._<provider>``). The registry
(``interceptors._registry``) patches a row when one of the provider's hook
modules has loaded and the row's module is imported.
"""

from __future__ import annotations

Row = tuple[str, str, str]  # (module, attribute path, wrapper kind)


# provider -> (modules whose import triggers patching, its rows' makings).
# openai 3.x loads its resource modules lazily (on first client.chat /
# .responses / .embeddings), so those submodules are hooked themselves;
# litellm.main is loaded by ``litellm`` (rows on a module that is not a hook
# module are patched when any of the provider's hook modules has loaded).
# The rows are built by table(), when a provider is patched: at interpreter
# start only this literal is read.
PROVIDERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "anthropic": (
        ("anthropic.resources.messages.messages",
         "anthropic.resources.beta.messages.messages",
         # older SDKs (0.40 checked): messages was a module, and a prompt-caching beta
         # existed; newer ones re-export the same classes (already ours: idempotent)
         "anthropic.resources.messages",
         "anthropic.resources.beta.prompt_caching.messages"),
        # (module, or "*" for each hook module; sync class; async class; "method:kind"...)
        (("*", "Messages", "AsyncMessages", "create:create", "parse:create", "stream:stream"),),
    ),
    "openai": (
        ("openai.resources.chat.completions.completions",
         # older SDKs (1.40 checked): chat.completions was a module, not a package
         "openai.resources.chat.completions",
         "openai.resources.responses.responses",
         "openai.resources.embeddings",
         "openai.resources.completions"),
        (("openai.resources.chat.completions.completions", "Completions", "AsyncCompletions",
          "create:chat_create", "parse:chat_parse", "stream:stream"),
         ("openai.resources.chat.completions", "Completions", "AsyncCompletions",
          "create:chat_create", "parse:chat_parse", "stream:stream"),
         ("openai.resources.responses.responses", "Responses", "AsyncResponses",
          "create:responses", "parse:responses", "stream:stream"),
         ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings",
          "create:embeddings"),
         ("openai.resources.completions", "Completions", "AsyncCompletions",
          "create:text_completion")),
    ),
    "litellm": (
        ("litellm",),
        # module functions, on ``litellm`` and ``litellm.main`` (where they are defined)
        (("litellm", "", "", "completion", "acompletion", "embedding", "aembedding",
          "text_completion", "atext_completion"),
         ("litellm.main", "", "", "completion", "acompletion", "embedding", "aembedding",
          "text_completion", "atext_completion")),
    ),
}

HOOK_MODULES: dict[str, tuple[str, ...]] = {name: hooks for name, (hooks, _) in PROVIDERS.items()}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS)


def table(provider: str) -> tuple[Row, ...]:
    """The rows of ``provider``: ``(module, attribute path, wrapper kind)``.

    A class resource gives a row per method for its sync class and its async
    class (kind ``async_<kind>``); a module's functions give a row each (the
    kind is the function's name)."""
    hooks, makings = PROVIDERS[provider]
    rows: list[Row] = []
    for module, sync_class, async_class, *methods in makings:
        for name in hooks if module == "*" else (module,):
            if not sync_class:
                rows.extend((name, function, function) for function in methods)
                continue
            for method_kind in methods:
                method, _, kind = method_kind.partition(":")
                rows.append((name, f"{sync_class}.{method}", kind))
                rows.append((name, f"{async_class}.{method}", f"async_{kind}"))
    return tuple(rows)
