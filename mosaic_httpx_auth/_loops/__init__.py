"""What concerns event loops: which one a caller runs on, and how work crosses between them.

- `tasks`: the running loop (an asyncio loop, or a trio token), and the work it owns rather
  than the caller who started it;
- `completion`: a one-time signal that callers on any loop, on any thread, can await;
- `thread`: an asyncio loop on a daemon thread of its own, which callers on any thread hand
  work to.

This file imports none of them: `thread` loads asyncio, which a trio program need not load,
and is imported only where it is used.
"""
