"""The model slots as Ray Serve replicas: ``python app.py --serve ray --replicas N``.

One machine's CPU bounds a class: every prompt goes through the encoder, so the last of 30
students waits about as long as 30 summaries in batches (issue 23). With ``--serve ray`` the
four slots run as a Ray Serve deployment (:class:`SlotReplica`, ``ray[serve]``): each replica
holds all four slots on its own engine (torch or ct2) in an ordinary
:class:`~summarizer.inference.slots.ModelSlots`, so it merges the requests routed to it with the
existing :class:`~summarizer.inference.batcher.RequestBatcher` and answers identical ones once.

Why the existing batcher and not Ray Serve's ``@serve.batch``: ``@serve.batch`` hands one
function a list of calls with one signature; ours mixes base and adapter rows of Summarize,
Compare and Arena requests in one batch, groups only requests whose decoding can share a batch
(:func:`~summarizer.inference.generation.batch_key`: a sampled request runs alone so its seed
reproduces it), caps rows and prompt tokens, streams per row and withdraws a cancelled request;
``@serve.batch`` has a size and a wait, not these rules, so it would need them rebuilt on top.

The app talks to the replicas through :class:`RaySlots`, a :class:`ModelSlots` whose model work
goes to Ray (``answer``, ``generate``, ``load``, ``trainable_parameters``; streaming through Ray
Serve's streaming responses) while sources, engine choice and tokenizers stay local: no tab knows
which serving mode runs.

Slot changes: the app's slot state (the four sources, the engine and its compute type) has an
``epoch`` counted up by every change (the teacher's Apply, the engine switch, a lesson). Every
request carries the whole state; a replica applies it before it answers if it is newer than its
own (a restarted replica catches up on its first request), and every answer carries the epoch it
was made under. An answer made under an epoch other than the app's epoch when it arrives is
never shown: the request is sent again with the state now (twice at most, then a clear error).

Faults: a replica that dies is restarted by Ray Serve; a request it held is sent once more
(the router picks a live replica), a second death gives a :class:`SlotError` that says so. Ray
not reachable at start, or replicas that cannot be placed: :class:`RayStartError` naming
``--ray-address`` (or the resource flags), with nothing left running.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from summarizer.inference.batcher import BatchLimits, Cancelled
from summarizer.inference.generation import GenerationSettings, batch_key
from summarizer.inference.pacing import StreamPacer
from summarizer.inference.slot_config import EMPTY_SLOT_HELP, SLOTS, SlotConfig, SlotError
from summarizer.inference.serve_config import RayServeConfig
from summarizer.inference.slots import BACKENDS, ModelSlots

APP_NAME = "studio-slots"
# A stream alone sends each row's newest text at most this often (the page redraws about as often).
STREAM_INTERVAL_S = 0.04
# A stream's first message waits this long after its batch starts, so an answer done by then goes
# whole in its reply, with no message before it (a tiny model's 60 ms summary; each message is a
# Ray round, docs/benchmarks-overhead.md); a first text 0.1 s later is not seen on a page.
FIRST_MESSAGE_S = 0.1
# Stream messages per second of one replica, all its streams together: each message costs Ray a
# round (serialization, the object store, the app's handle), so a class of 24 on two replicas
# gets a message per stream every 0.25 s (the app's pages get one every 0.1 s at most anyway,
# ui.prompting.PACER); measured in docs/benchmarks-overhead.md.
STREAM_RATE = 48.0
# Environment a replica needs to find the same models offline as the app does.
PASSED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
              "STUDIO_CT2_CACHE", "STUDIO_DEVICE", "TOKENIZERS_PARALLELISM")
ROOT = Path(__file__).resolve().parents[2]


class RayStartError(RuntimeError):
    """Ray or the replicas could not be started; the message names the flag to change."""


@dataclass(frozen=True)
class SlotState:
    """What every replica must hold to answer for the app now.

    Attributes:
        owner: the app process's id (a replica left from an earlier app adopts the new one's state).
        epoch: counted up by every change of a source or of the engine.
        sources: ``(slot, source)`` for the four slots (``None`` = empty).
        backend, compute_type: the engine (:data:`~summarizer.inference.slots.BACKENDS`).
        max_input_tokens: where the engines cut a prompt (None: the replica's default).
    """

    owner: str
    epoch: int
    sources: tuple
    backend: str
    compute_type: str
    max_input_tokens: int | None = None

    @property
    def token(self) -> tuple[str, int]:
        return self.owner, self.epoch

    def newer_than(self, other: "SlotState | None") -> bool:
        return other is None or self.owner != other.owner or self.epoch > other.epoch


# ---- the replica ---------------------------------------------------------------------------------
class SlotReplica:
    """One Ray Serve replica: the four slots in a :class:`ModelSlots` and its batcher.

    Every method takes the app's :class:`SlotState`, applies it when newer (:meth:`_sync`) and
    returns ``{"value": ..., "token": (owner, epoch) it ran under, "replica": id}``; a state
    change while the work ran gives ``token`` None (the app sends it again). A slot or setting
    error comes back as ``{"error": (kind, message)}``, so its message reaches the page without
    Ray's traceback.

    Args:
        device: torch device (None: CUDA when the replica has a GPU, else CPU).
        threads: torch CPU threads of this replica.
        limits: batching limits of its :class:`~summarizer.inference.batcher.RequestBatcher`.
        workers: threads that wait on the slots for requests (at least ``max_ongoing``).
    """

    def __init__(self, device: str | None, threads: int, limits: BatchLimits, workers: int,
                 initial: SlotState | None = None):
        import torch

        torch.set_num_threads(max(1, threads))
        self.slots = ModelSlots(SlotConfig(), device=device, limits=limits)
        self.state: SlotState | None = None
        self.changes = 0  # applied states: an answer is labelled only if none came while it ran
        self._sync_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replica")
        self.replica_id = _replica_id()
        self.pacer = StreamPacer(rate=STREAM_RATE)  # this replica's streams share its messages
        if initial is not None:
            self._preload(initial)

    def _preload(self, state: SlotState) -> None:
        """Load the start's filled slots now, so a class's first requests find them loaded; a slot
        that fails is left to fail on use, with its message (as in the in-process app)."""
        try:
            self._sync(state)
            self.slots.load()
        except Exception as err:  # noqa: BLE001 - ctranslate2 raises RuntimeError too; never fail the start
            print(f"replica {self.replica_id}: a slot did not load at start ({err}); it loads on first use.")

    def _sync(self, state: SlotState) -> tuple[tuple | None, int]:
        """Apply ``state`` if newer than this replica's; returns (its token now, change count)."""
        with self._sync_lock:
            if state.newer_than(self.state):
                for slot, source in state.sources:
                    if slot != "base" or source:
                        self.slots.set_source(slot, source)
                self.slots.set_backend(state.backend, state.compute_type)
                if state.max_input_tokens is not None and hasattr(self.slots, "set_max_input_tokens"):
                    self.slots.set_max_input_tokens(state.max_input_tokens)
                self.state, self.changes = state, self.changes + 1
            return self.state.token, self.changes

    def _run(self, state: SlotState, work: Callable[[], object]) -> dict:
        try:
            token, before = self._sync(state)
            value = work()
        except (ValueError, Cancelled) as err:  # SlotError, BackendError, settings out of range
            kind = "slot" if isinstance(err, SlotError) else "cancelled" if isinstance(err, Cancelled) else "value"
            return {"error": (kind, str(err)), "replica": self.replica_id}
        return {"value": value, "token": token if self.changes == before else None, "replica": self.replica_id}

    async def _threaded(self, fn, cancel: threading.Event | None = None):
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except asyncio.CancelledError:  # the app withdrew the request: leave the batcher's queue
            if cancel is not None:
                cancel.set()
            raise

    async def answer(self, state: SlotState, slots: list[str], prompts: list[str],
                     settings: GenerationSettings) -> dict:
        """:meth:`ModelSlots.answer` here (batched with this replica's other requests)."""
        cancel = threading.Event()
        return await self._threaded(lambda: self._run(state, lambda: _flat(slots, self.slots.answer(
            slots, prompts, settings, cancel=cancel))), cancel)

    async def answer_stream(self, state: SlotState, slots: list[str], prompts: list[str],
                            settings: GenerationSettings, rows: list[int]):
        """:meth:`answer` as a stream: ``{"start": n, "replica": id}`` when its batch starts, then ``{"rows":
        {row: text so far}}`` (the newest text of each row since the last event), then the reply."""
        loop, events, cancel = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        put = lambda event: loop.call_soon_threadsafe(events.put_nowait, event)  # noqa: E731
        streams = {row: (lambda text, row=row: put(("row", row, text))) for row in rows}

        def work():
            return _flat(slots, self.slots.answer(slots, prompts, settings, cancel=cancel, streams=streams,
                                                  on_start=lambda n: put(("start", n, None))))
        reply = asyncio.ensure_future(self._threaded(lambda: self._run(state, work), cancel))
        reply.add_done_callback(lambda _: put(None))
        held: dict = {}  # a start that the answer overtook: it goes with the reply
        try:
            with self.pacer.streaming() as interval:
                async for event in self._paced(events, reply, interval, held):
                    yield event
        except asyncio.CancelledError:
            cancel.set()
            raise
        yield {**held, **(await reply)}

    async def _paced(self, events: asyncio.Queue, reply: asyncio.Future, interval: Callable[[float], float],
                     held: dict):
        """The stream's messages from ``events`` until ``None``: each row's newest text at most once
        per ``interval(STREAM_INTERVAL_S)`` seconds (texts it overtook are skipped), the first
        message (the ``start``, with any row texts by then) :data:`FIRST_MESSAGE_S` (or one
        interval, if longer) after the batch starts.
        Nothing goes once ``reply`` is done: the reply carries every row's final text
        (:class:`_Stream` hands it to the streams), and a start not yet sent is put in ``held`` to
        go with it. Each message costs Ray a round of its own, so a tiny model's 60 ms summary
        alone goes as its reply only. The waits end when ``reply`` is done, so the answer is never
        held back."""
        ended = sent = False
        while not ended:
            waiting = [await events.get()]
            if not sent:  # a quick answer needs no message before its reply
                await asyncio.wait([reply], timeout=max(FIRST_MESSAGE_S, interval(STREAM_INTERVAL_S)))
            while not events.empty():
                waiting.append(events.get_nowait())
            message, latest = {}, {}  # coalesced: only each row's newest text goes over the wire
            for event in waiting:
                if event is None:
                    ended = True
                elif event[0] == "start":
                    message.update(start=event[1], replica=self.replica_id)
                else:
                    latest[event[1]] = event[2]
            if ended:
                held.update(message)
                return
            if latest:
                message["rows"] = latest
            if message:
                yield message
                sent = True
                await asyncio.wait([reply], timeout=interval(STREAM_INTERVAL_S))

    async def generate(self, state: SlotState, slots: list[str], prompts: list[str],
                       settings: GenerationSettings, batch_size: int) -> dict:
        """:meth:`ModelSlots.generate` here (one caller's prompts, under the slots' lock)."""
        return await self._threaded(lambda: self._run(state, lambda: self.slots.generate(
            slots, prompts, settings, batch_size=batch_size)))

    async def load(self, state: SlotState, slots: list[str]) -> dict:
        return await self._threaded(lambda: self._run(state, lambda: self.slots.load(slots)))

    async def parameters(self, state: SlotState, slot: str) -> dict:
        return await self._threaded(lambda: self._run(state, lambda: self.slots.trainable_parameters(slot)))

    async def info(self) -> dict:
        """Where this replica runs (device, dtype, torch threads, host name, process id) and what its
        batcher ran so far (``batches``, and ``rows``: the rows they held)."""
        import torch

        return {"device": str(self.slots.device), "dtype": str(self.slots.dtype).replace("torch.", ""),
                "threads": torch.get_num_threads(), "host": socket.gethostname(), "pid": os.getpid(),
                "replica": self.replica_id, "batches": self.slots.batcher.batches, "rows": self.slots.batcher.rows}


def _flat(slots: Sequence[str], answer: dict[str, list[str]]) -> list[str]:
    """``{slot: texts}`` as one list in row order (slot-major, as the app's answer cache keeps it)."""
    return [text for slot in slots for text in answer[slot]]


def _replica_id() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 - outside Ray Serve (a direct test): the process id names it
        return f"pid-{os.getpid()}"


# ---- the app's side ------------------------------------------------------------------------------
def _replica_died(err: BaseException) -> bool:
    """True for the errors Ray raises when the replica holding a request died or went away."""
    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    return isinstance(err, (ray_errors.RayActorError, ray_errors.WorkerCrashedError,
                            serve_errors.ReplicaUnavailableError, serve_errors.DeploymentUnavailableError))


class RaySlots(ModelSlots):
    """The model slots of the app when they run as Ray Serve replicas (same interface as
    :class:`ModelSlots`, so the tabs cannot tell).

    Sources, the engine choice, tokenizers (tokenizer files only, never a model) and the answer
    cache stay in the app; ``answer``, ``generate``, ``load`` and ``trainable_parameters`` go to
    the replicas with the app's :class:`SlotState` (see the module docstring for versions and faults).

    Args:
        config: slot sources.
        handle: the deployment's ``DeploymentHandle`` (:func:`start_ray_slots` makes it).
        serve_config: how it was started (replica count, for :meth:`generate`'s pieces).
        backend, compute_type: the engine every replica runs.
        owner: the app's id in :class:`SlotState` (default: a new random one).

    Attributes:
        replies: replica id -> answers it gave (for the tests and the benchmark).
        serving: replica id -> streamed requests running on it now.
        retries: requests sent again (a replica died, or the slots changed while they ran).
    """

    def __init__(self, config: SlotConfig, handle, serve_config: RayServeConfig, backend: str = "torch",
                 compute_type: str = "auto", owner: str | None = None):
        self.handle, self.serve_config = handle, serve_config
        self.owner, self.epoch = owner or uuid.uuid4().hex, 0
        self._tokenizers: dict[tuple[str, str], object] = {}
        self._loaded: set[tuple[int, str]] = set()  # (epoch, slot) loaded on a replica
        self.replies: dict[str, int] = {}
        self.serving: dict[str, int] = {}  # replica id -> streamed requests it runs now
        self.retries = 0
        super().__init__(config, device="cpu", backend="torch")  # its local engine never loads a model
        self.set_backend(backend, compute_type)
        info = self._result(handle.info.remote())
        import torch

        self.device, self.dtype = torch.device(info["device"]), getattr(torch, info["dtype"])

    @property
    def engine(self):
        """No engine runs in the app's process with ``--serve ray`` (every model call goes to the
        replicas); asking for it is a bug that would load a model here."""
        raise SlotError("With --serve ray the models run on the Ray Serve replicas: there is no engine in the app.")

    # ---- state ---------------------------------------------------------------------------------
    @staticmethod
    def initial_state(config: SlotConfig, owner: str, backend: str, compute_type: str) -> SlotState:
        """The state a new :class:`RaySlots` of ``owner`` starts with (its first epoch), for the
        replicas to load at start: epoch 1 when the engine is not torch (a switch), else 0."""
        return SlotState(owner, int(backend != "torch" or compute_type != "auto"),
                         tuple((s, getattr(config, s)) for s in SLOTS), backend, compute_type,
                         getattr(config, "max_input_tokens", None))

    def state(self) -> SlotState:
        """The slot state every answer must be made under now."""
        with self._state_lock:
            return SlotState(self.owner, self.epoch, tuple((s, getattr(self.config, s)) for s in SLOTS),
                             self.backend, self.compute_type, getattr(self.config, "max_input_tokens", None))

    def set_max_input_tokens(self, value, field: str = "max input tokens") -> int:
        """:meth:`ModelSlots.set_max_input_tokens` for every replica (a new epoch when it changes)."""
        before = getattr(self.config, "max_input_tokens", None)
        value = super().set_max_input_tokens(value, field)
        if value != before:
            with self._state_lock:
                self.epoch += 1
        return value

    def set_backend(self, backend: str, compute_type: str = "auto") -> None:
        """Switch every replica's engine (applied by each before its next answer).

        Raises:
            SlotError: unknown backend or compute type; a type the replicas' device lacks is
                reported by the next :meth:`load` (the engine tab loads right after switching).
        """
        from summarizer.inference.ct2_engine import COMPUTE_TYPES

        if backend not in BACKENDS:
            raise SlotError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
        if compute_type not in COMPUTE_TYPES:
            raise SlotError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}, got {compute_type!r}.")
        with self._state_lock:
            if (backend, compute_type) != (getattr(self, "backend", None), getattr(self, "compute_type", None)):
                self.backend, self.compute_type, self.epoch = backend, compute_type, self.epoch + 1

    def set_source(self, slot: str, source: str | None) -> None:
        """Point ``slot`` at a new source for every replica (checked here first: every machine
        must see the same folder or hub id).

        Raises:
            SlotError: unknown slot, missing folder, wrong kind of model (pickle weights the
                restricted unpickler refuses included), or an empty base.
        """
        source = self._checked_source(slot, source)
        with self._state_lock:
            if source != getattr(self.config, slot):
                setattr(self.config, slot, source)
                self._versions[slot] += 1
                self.epoch += 1

    def is_loaded(self, slot: str) -> bool:
        """True when a replica loaded ``slot`` under the current state (others load on first use)."""
        return (self.epoch, slot) in self._loaded

    def tokenizer_of(self, slot: str):
        """The tokenizer of ``slot``'s prompts, read from its files only (no model in the app).

        Raises:
            SlotError: the slot is empty or its tokenizer cannot be loaded.
        """
        from summarizer.inference.ct2_engine import load_tokenizer

        which = "full" if slot == "full" else "base"
        source = getattr(self.config, which)
        if not source:
            raise SlotError(EMPTY_SLOT_HELP[which])
        key = (which, source)
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(source, which)
        return self._tokenizers[key]

    def base_tokenizer(self):
        return self.tokenizer_of("base")

    # ---- model work on the replicas -----------------------------------------------------------
    def load(self, slots: Sequence[str] = SLOTS) -> None:
        """Load the filled ``slots`` on a replica now (the others load them on first use).

        Raises:
            SlotError: a slot's model is missing or of the wrong kind on the replica's machine.
        """
        filled = [s for s in slots if self.is_filled(s)]
        epoch = self._call(lambda state: self.handle.load.remote(state, filled))[1]
        self._loaded.update((epoch, s) for s in filled)

    def trainable_parameters(self, slot: str) -> tuple[int, int]:
        return tuple(self._call(lambda state: self.handle.parameters.remote(state, slot))[0])

    def generate(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings,
                 batch_size: int = 8, on_batch: Callable[[int, int], None] | None = None
                 ) -> dict[str, list[str]]:
        """:meth:`ModelSlots.generate` spread over the replicas: the prompts in ``most_replicas``
        contiguous pieces sent at once (Ray Serve's router gives each to the less busy of two
        replicas), each generated there in batches of ``batch_size``. A caller that sends one
        batch per call (Evaluate's and the Prompt Lab's ``take_turns``) has that batch shared out too."""
        for slot in slots:
            self._check_slot(slot)
        n = len(prompts)
        size = max(1, -(-n // self.serve_config.most_replicas))
        pieces = [list(prompts[i:i + size]) for i in range(0, n, size)]
        out: dict[str, list[str]] = {s: [] for s in slots}
        done, lock = 0, threading.Lock()

        def run(piece):
            nonlocal done
            texts = self._call(lambda state: self.handle.generate.remote(state, list(slots), piece, settings,
                                                                         batch_size))[0]
            with lock:
                done += len(piece) * len(slots)
                if on_batch:
                    on_batch(done, n * len(slots))
            return texts
        with ThreadPoolExecutor(max_workers=max(1, len(pieces)), thread_name_prefix="ray-generate") as pool:
            for texts in pool.map(run, pieces):
                for s in slots:
                    out[s].extend(texts[s])
        return out

    def answer(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings, *,
               cancel: threading.Event | None = None, streams: dict[int, Callable[[str], None]] | None = None,
               on_start: Callable[[int], None] | None = None) -> dict[str, list[str]]:
        """:meth:`ModelSlots.answer` through a replica (contract unchanged; identical requests are
        answered once here, before Ray). With ``streams`` the rows stream back through Ray Serve's
        streaming response."""
        for slot in slots:
            self._check_slot(slot)
            if not self.is_filled(slot):
                raise SlotError(EMPTY_SLOT_HELP[slot])
        settings.validate()
        rows = [(s, p) for s in slots for p in prompts]
        key = (self.state().token, tuple(rows), batch_key(settings))
        stream = bool(streams) and settings.strategy != "beam"

        def compute(fan_out):
            texts, epoch = self._call(lambda state: self._send_answer(state, slots, prompts, settings, fan_out,
                                                                       stream, on_start), cancel)
            self._loaded.update((epoch, s) for s in slots)
            return texts

        texts = self.answers.get(key, len(rows), compute, streams, cancel)
        n = len(prompts)
        return {s: texts[k * n:(k + 1) * n] for k, s in enumerate(slots)}

    def _send_answer(self, state, slots, prompts, settings, fan_out, stream, on_start):
        """A started request: a ``DeploymentResponse``, or a generator driven here for a stream."""
        if not stream:
            return self.handle.answer.remote(state, list(slots), list(prompts), settings)
        rows = list(range(len(slots) * len(prompts)))
        return _Stream(self.handle.options(stream=True).answer_stream.remote(
            state, list(slots), list(prompts), settings, rows), fan_out, on_start, self.serving)

    def _call(self, send: Callable[[SlotState], object], cancel: threading.Event | None = None):
        """``send(state)``'s reply value and the epoch it was made under; sent again once if its
        replica died, and up to twice if the slots changed meanwhile (an older answer is never returned).

        Raises:
            SlotError: a replica died twice, the slots kept changing, or the replica's own error.
            ValueError: a setting out of range (the replica's message).
            Cancelled: ``cancel`` was set first.
        """
        died = changed = 0
        while True:
            state = self.state()
            try:
                reply = self._result(send(state), cancel)
            except Exception as err:  # noqa: BLE001 - only a dead replica is retried
                if not _replica_died(err):
                    raise
                died += 1
                if died > 1:
                    raise SlotError("A Ray Serve replica stopped twice while answering this request "
                                    f"({type(err).__name__}); Ray restarts it; press the button again.") from None
                self.retries += 1
                continue
            if "error" in reply:
                kind, message = reply["error"]
                raise {"slot": SlotError, "cancelled": Cancelled}.get(kind, ValueError)(message)
            if reply["token"] is not None and tuple(reply["token"]) == self.state().token:
                with self._state_lock:
                    self.replies[reply["replica"]] = self.replies.get(reply["replica"], 0) + 1
                return reply["value"], reply["token"][1]
            changed += 1
            if changed > 2:
                raise SlotError("The model slots changed while this request ran (the teacher applied a "
                                "new model or engine); press the button again.")
            self.retries += 1

    @staticmethod
    def _result(response, cancel: threading.Event | None = None):
        """The reply of a ``DeploymentResponse`` (or :class:`_Stream`), polling ``cancel``."""
        if isinstance(response, _Stream):
            return response.drain(cancel)
        while True:
            try:
                return response.result(timeout_s=0.1 if cancel is not None else None)
            except TimeoutError:
                if cancel is not None and cancel.is_set():
                    response.cancel()
                    raise Cancelled("cancelled") from None


_SERVING_LOCK = threading.Lock()


class _Stream:
    """Drives a streaming reply of :meth:`SlotReplica.answer_stream`: row texts to the streams,
    the batch start to ``on_start``; returns the final reply."""

    def __init__(self, generator, streams: dict[int, Callable[[str], None]], on_start, serving: dict[str, int]):
        self.generator, self.streams, self.on_start, self.serving = generator, streams, on_start, serving
        self.replica: str | None = None

    def drain(self, cancel: threading.Event | None) -> dict:
        watcher = None
        if cancel is not None:  # the generator blocks between tokens: a thread cancels it
            stop = threading.Event()
            watcher = threading.Thread(target=self._watch, args=(cancel, stop), daemon=True)
            watcher.start()
        try:
            for event in self.generator:
                if "start" in event:
                    self._serving(event["replica"], +1)
                    if self.on_start:
                        self.on_start(event["start"])
                for row, text in event.get("rows", {}).items():
                    if row in self.streams:
                        self.streams[row](text)
                if "value" in event and event.get("token") is not None:
                    self._final(event["value"])
                if "value" in event or "error" in event:
                    return event
        except Exception as err:  # noqa: BLE001 - a cancelled stream ends with Ray's error
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled") from None
            raise
        finally:
            if watcher is not None:
                stop.set()
            if self.replica is not None:
                self._serving(self.replica, -1)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        raise SlotError("The Ray Serve replica's stream ended without an answer; press the button again.")

    def _final(self, texts: list[str]) -> None:
        """Each row's final text to its stream: the replica sends no rows message once the answer is
        done, so a stream ends at the final text here, as in the in-process slots."""
        for row, stream in self.streams.items():
            if row < len(texts):
                stream(texts[row])

    def _serving(self, replica: str, step: int) -> None:
        """Count this stream in (or out of) ``serving[replica]``, the streams a replica runs now."""
        if step > 0:
            self.replica = replica
        with _SERVING_LOCK:
            self.serving[replica] = self.serving.get(replica, 0) + step
            if not self.serving[replica]:
                del self.serving[replica]

    def _watch(self, cancel: threading.Event, stop: threading.Event) -> None:
        while not stop.wait(0.05):
            if cancel.is_set():
                self.generator.cancel()
                return


# ---- starting ------------------------------------------------------------------------------------
def start_ray_slots(config: SlotConfig, serve_config: RayServeConfig, device: str | None = None,
                    backend: str = "torch", compute_type: str = "auto") -> RaySlots:
    """Start (or join) Ray, deploy the replicas and return the app's :class:`RaySlots`.

    With ``serve_config.address`` None a local Ray instance starts on this machine; ``"auto"``
    or ``"HOST:PORT"`` joins a running cluster (``ray start --head`` / ``ray start --address``).
    The replicas import this project from this checkout's folder (``PYTHONPATH``), which every
    machine of the cluster must have at the same path, and they find the models as the app does
    (the same folders, or the Hugging Face cache; see docs/serving.md).

    Raises:
        RayStartError: Ray cannot be reached at ``--ray-address`` or started, the cluster lacks
            the CPUs/GPUs the replicas ask for, or they do not start within the timeout. Nothing is
            left running: a deployment made here is deleted, a Ray started here is shut down.
    """
    try:
        import ray
        from ray import serve
    except ImportError as err:
        raise RayStartError(f'--serve ray needs Ray Serve: pip install "ray[serve]==2.60.0" ({err}).') from None
    started_here, deployed = not ray.is_initialized(), False
    _init_ray(ray, serve_config)
    try:
        _check_resources(ray, serve_config)
        serve.start(proxy_location="Disabled")  # handles only: no HTTP proxy, no port to hold
        replica = serve.deployment(SlotReplica, name="SlotReplica").options(**serve_config.deployment_options())
        threads = max(1, int(serve_config.replica_cpus))
        owner = uuid.uuid4().hex
        initial = RaySlots.initial_state(config, owner, backend, compute_type)
        app = replica.bind(device, threads, serve_config.limits or BatchLimits(), serve_config.max_ongoing + 4,
                           initial)
        deployed = True  # from here on a failure leaves a deployment to delete
        handle = serve._run(app, name=APP_NAME, route_prefix=None, _blocking=False)
        _wait_running(serve, serve_config)
        slots = RaySlots(config, handle, serve_config, backend, compute_type, owner=owner)
    except BaseException:
        _stop(ray, serve, started_here, deployed)
        raise
    atexit.register(_stop, ray, serve, started_here, True)  # a joined cluster keeps no replicas of ours
    return slots


def _init_ray(ray, serve_config: RayServeConfig) -> None:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    where = serve_config.address
    _probe(where)
    kwargs = dict(runtime_env={"env_vars": env}, include_dashboard=False, logging_level="WARNING",
                  log_to_driver=False, ignore_reinit_error=True)
    if where is None:  # a local instance: small object store, we pass text only
        kwargs.update(num_cpus=serve_config.local_cpus or os.cpu_count(), object_store_memory=256 * 2 ** 20)
    try:
        ray.init(address=where, **kwargs)
    except Exception as err:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: all mean "not there"
        shown = where or "(none: start a local Ray)"
        raise RayStartError(
            f"--ray-address {shown}: Ray cannot be reached or started ({type(err).__name__}: {err}). Start the "
            "cluster first (`ray start --head` on the teacher's machine, `ray start --address=HEAD:6379` on "
            "each lab machine), then give --ray-address auto or HOST:PORT; or leave --ray-address out to "
            "start Ray on this machine.") from None


def _probe(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``HOST:PORT`` address: ``ray.init`` would retry for
    minutes before giving up."""
    if address in (None, "auto"):
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host or address, int(port) if port.isdigit() else 6379), timeout=timeout_s).close()
    except OSError as err:
        raise RayStartError(
            f"--ray-address {address}: no Ray head answers there ({err}). Start it with `ray start --head` on "
            "that machine (it prints the address to give), use --ray-address auto on a machine that ran "
            "`ray start`, or leave --ray-address out to start Ray on this machine.") from None


def _check_resources(ray, serve_config: RayServeConfig) -> None:
    """Refuse replicas the cluster can never place (Ray would wait for them for ever)."""
    have = ray.cluster_resources()
    need = serve_config.min_replicas if serve_config.autoscaling else serve_config.replicas
    for name, per, flag in (("CPU", serve_config.replica_cpus, "--replica-cpus"),
                            ("GPU", serve_config.replica_gpus, "--replica-gpus")):
        if need * per > have.get(name, 0) + 1e-9:
            raise RayStartError(f"{need} replica(s) x {flag} {per:g} need {need * per:g} {name}s, but the Ray "
                                f"cluster has {have.get(name, 0):g}: lower --replicas or {flag}, or add machines "
                                "(`ray start --address=HEAD:6379`).")


def _wait_running(serve, serve_config: RayServeConfig) -> None:
    deadline = time.monotonic() + serve_config.start_timeout_s
    while True:
        status = serve.status().applications.get(APP_NAME)
        state = str(getattr(status, "status", "")).rsplit(".", 1)[-1]
        if state == "RUNNING":
            return
        if state in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RayStartError(f"The Ray Serve replicas failed to start: {status.message}")
        if time.monotonic() > deadline:
            raise RayStartError(f"The Ray Serve replicas did not start within {serve_config.start_timeout_s:g} s "
                                f"(status {state or 'unknown'}); check `ray status` for free CPUs/GPUs.")
        time.sleep(0.2)


def _stop(ray, serve, started_here: bool, deployed: bool) -> None:
    """Undo a start: delete the deployment made here, and shut down a Ray instance started here."""
    if deployed and ray.is_initialized():
        try:
            serve.delete(APP_NAME)
        except Exception:  # noqa: BLE001 - already gone (Ray stopped first)
            pass
    if started_here:
        ray.shutdown()


def stop_ray_slots() -> None:
    """Delete the replicas and disconnect from Ray (a local instance started here stops)."""
    import ray
    from ray import serve

    _stop(ray, serve, True, True)
