"""Micro-batching of concurrent predict calls for predictors that offer ``predict_batch``.

Requests arriving within ``max_wait_s`` of each other (up to ``max_batch``) are answered by one vectorised
``predict_batch`` call in a worker thread; when the batch call refuses the inputs (a documented
:class:`~medai.errors.MedaiError`), each input is predicted alone so every request gets its own answer or error.
The predictor's own code computes every result (no logic here).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from medai.errors import MedaiError
from medai.inference.predictor import Predictor

logger = logging.getLogger(__name__)


class MicroBatcher:
    """Batches ``predict`` calls onto ``predictor.predict_batch``."""

    def __init__(self, predictor: Predictor, max_batch: int = 32, max_wait_s: float = 0.002) -> None:
        self.predictor = predictor
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._q: queue.Queue = queue.Queue()
        self._t = threading.Thread(target=self._run, name=f"batch-{predictor.metadata.name}", daemon=True)
        self._t.start()

    async def predict(self, inputs: Any) -> Any:
        """The prediction for ``inputs`` (raises what ``predict`` would raise)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._q.put((inputs, fut, loop))
        return await fut

    def close(self) -> None:
        """Stop the worker thread."""
        self._q.put(None)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._q.get(timeout=self.max_wait_s)
                except queue.Empty:
                    break
                if item is None:
                    self._q.put(None)
                    break
                batch.append(item)
            self._answer(batch)

    def _answer(self, batch: list[tuple[Any, asyncio.Future, asyncio.AbstractEventLoop]]) -> None:
        results: list[tuple[bool, Any]]
        try:
            preds = self.predictor.predict_batch([b[0] for b in batch])  # type: ignore[attr-defined]
            results = [(True, p) for p in preds]
        except MedaiError:
            results = []
            for inputs, _, _ in batch:
                try:
                    results.append((True, self.predictor.predict(inputs)))
                except Exception as exc:  # noqa: BLE001 -- handed to the waiting request
                    results.append((False, exc))
        except Exception as exc:  # noqa: BLE001
            logger.exception("batch predict failed")
            results = [(False, exc)] * len(batch)
        for (_, fut, loop), (ok, val) in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, fut, ok, val)


def _settle(fut: asyncio.Future, ok: bool, val: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(val)
    else:
        fut.set_exception(val)
