"""The CTranslate2 engine of the model slots (``backend="ct2"``): every slot on its own converted model.

:class:`CT2Engine` holds one :class:`CT2Model` per slot, made from the slot's cached conversion
(:mod:`summarizer.inference.ct2_convert`). Adapter slots are converted merged onto the base (the
conversion key includes the base source), so a new base drops them; the compute type is resolved
per device (int8 on CPU, int8_float16 on CUDA).

Tokens: CTranslate2 takes the tokenizer's *tokens* (strings), so a prompt goes in as
``tokenizer.convert_ids_to_tokens(tokenizer.encode(text))`` (with T5's ``</s>``) and a result
comes back through ``tokenizer.decode(tokenizer.convert_tokens_to_ids(tokens))``. The decoder
start token (T5: ``<pad>``) is written by the converter into the model's ``config.json``.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import AutoTokenizer

from summarizer.inference import ct2_convert
from summarizer.inference.generation import GenerationSettings, length_sorted_batches
from summarizer.inference.meta_model import config_parameters
from summarizer.inference.model_sources import check_kind
from summarizer.inference.slot_config import ADAPTER_SLOTS, EMPTY_SLOT_HELP, SLOTS, SlotConfig, SlotError
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.tokenizer_lock import tokenizer_lock

COMPUTE_TYPES = ("auto", "int8", "float32", "int8_float16")


# A class's CTranslate2 batch on a CPU holds at most this many rows, in length-sorted batches: on
# a CPU its time per row grows with the padding a long prompt gives the short ones, and 8 rows
# already share each read of the weights (one thread, 15 DialogSum prompts as one batch against
# 8 + 7 rows: base shape 6.2 - 10.1 s against 5.5 - 7.2 s, tiny 0.13 - 0.24 s against 0.12 - 0.18 s;
# docs/benchmarks-overhead.md). A GPU keeps whole batches.
CPU_BATCH_ROWS = 8


@dataclass(frozen=True)
class ThreadLayout:
    """How the CTranslate2 engine spreads ``cores`` CPU threads over its slots' translators.

    Compare translates the four slots side by side (:meth:`CT2Engine.generate_rows`). Each
    translator runs ``inter`` batches at once with ``intra`` OpenMP threads each (CTranslate2's
    ``inter_threads`` and ``intra_threads``, docs/parallel.md); if every translator got every
    core, four side by side would run four times as many threads as there are cores (8 OpenMP
    threads on 2 cores), whose speed then depends on what else the machine runs (issue 23: Compare
    1.17x one torch base summary one day, 0.58 another; ``docs/benchmarks-overhead.md``). So the
    threads running at any moment never exceed ``cores``: at most :attr:`side_by_side` slots
    translate at once, each batch with :attr:`intra` threads, and a slot running alone splits a
    batch of several rows into up to :attr:`inter` parts that run at once (workers on one device
    share the model's weights). The cost: on fewer than 8 cores one row alone (a single Summarize)
    runs on fewer threads than before (1 of 2 here, about 1.7x slower with CTranslate2).

    Attributes:
        cores: the CPU threads the engine may use (``torch.get_num_threads()``, the physical cores by default).
        intra: threads per batch (``intra_threads``).
        inter: batches one translator runs at once (``inter_threads``), ``cores // intra``.
        side_by_side: slots that translate at once.
    """

    cores: int
    intra: int
    inter: int
    side_by_side: int

    @classmethod
    def for_cores(cls, cores: int, slots: int = 4) -> "ThreadLayout":
        """The layout for ``cores`` threads and up to ``slots`` slots side by side: 2 cores give
        1 thread per batch and 2 slots (or 2 parts of one slot's batch) at once; 16 give 4 x 4.

        Raises:
            ValueError: ``cores`` or ``slots`` below 1.
        """
        if cores < 1 or slots < 1:
            raise ValueError(f"ThreadLayout: cores and slots must be >= 1, got {cores!r} and {slots!r}.")
        side = min(slots, cores)
        intra = cores // side
        return cls(cores=cores, intra=intra, inter=cores // intra, side_by_side=side)

    def parts(self, slots_at_once: int) -> int:
        """How many batches one slot may run at once while ``slots_at_once`` slots translate together."""
        return max(1, self.inter // max(1, min(slots_at_once, self.side_by_side)))


class BackendError(ValueError):
    """A compute type or generation setting CTranslate2 cannot honour (the message names it)."""


def resolve_compute_type(compute_type: str, device: str) -> str:
    """The concrete CTranslate2 compute type for ``compute_type`` on ``device`` ("cpu"/"cuda").

    ``auto`` is int8 on CPU (fastest there: 0.45x of PyTorch's time in the issue's measurement)
    and int8_float16 on CUDA.

    Raises:
        BackendError: unknown type, or one this device does not support (e.g. int8_float16 on CPU).
    """
    if compute_type not in COMPUTE_TYPES:
        raise BackendError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}, got {compute_type!r}.")
    import ctranslate2

    if compute_type == "auto":
        compute_type = "int8_float16" if device == "cuda" else "int8"
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        raise BackendError(f"compute type {compute_type!r} is not supported on {device} "
                           f"(supported: {', '.join(sorted(supported))}); choose auto, int8 or float32.")
    return compute_type


def unsupported_settings(settings: GenerationSettings) -> list[str]:
    """Messages for settings CTranslate2 cannot honour exactly (empty: all are honoured).

    Every field of :class:`GenerationSettings` maps onto ``Translator.translate_batch``
    (see :func:`translate_options`); this guards fields added later without a mapping.
    """
    mapped = {"max_new_tokens", "min_new_tokens", "strategy", "temperature", "top_k", "top_p",
              "num_beams", "seed"}
    return [f"generation setting {name!r} has no CTranslate2 equivalent; use --backend torch"
            for name in settings.to_dict() if name not in mapped]


def translate_options(settings: GenerationSettings) -> dict:
    """``Translator.translate_batch`` keyword arguments for ``settings``.

    Lengths: ``max_decoding_length``/``min_decoding_length`` count generated tokens including the
    end token, as transformers' ``max_new_tokens``/``min_new_tokens`` do. Greedy is beam 1 with
    top-k 1; sampling is beam 1 with CTranslate2's top-k (0 = whole vocabulary, as in
    transformers), top-p and temperature.

    Raises:
        BackendError: a setting has no CTranslate2 equivalent.
    """
    settings.validate()
    problems = unsupported_settings(settings)
    if problems:
        raise BackendError("; ".join(problems) + ".")
    opts = dict(max_decoding_length=settings.max_new_tokens, min_decoding_length=settings.min_new_tokens,
                max_input_length=0)  # prompts are truncated by the tokenizer, as on the torch path
    if settings.strategy == "beam":
        return {**opts, "beam_size": settings.num_beams}
    if settings.strategy == "sampling":
        return {**opts, "beam_size": 1, "sampling_topk": settings.top_k, "sampling_topp": settings.top_p,
                "sampling_temperature": settings.temperature}
    return {**opts, "beam_size": 1, "sampling_topk": 1}



@dataclass
class CT2Model:
    """One slot's CTranslate2 translator and the tokenizer its tokens come from."""

    translator: object
    tokenizer: object
    folder: Path
    device: str
    compute_type: str
    threads: int
    workers: int = 1

    @classmethod
    def load(cls, folder: Path, tokenizer, device: str, compute_type: str, threads: int,
             workers: int = 1) -> "CT2Model":
        """Load the converted model in ``folder`` with ``threads`` CPU threads per batch and
        ``workers`` batches at once (:class:`ThreadLayout`)."""
        return cls(cls._translator(folder, device, compute_type, threads, workers), tokenizer, folder,
                   device, compute_type, threads, workers)

    @staticmethod
    def _translator(folder, device, compute_type, threads, workers=1):
        import ctranslate2

        torch_threads = torch.get_num_threads()
        try:
            return ctranslate2.Translator(str(folder), device=device, compute_type=compute_type,
                                          intra_threads=threads, inter_threads=workers)
        finally:  # loading sets the calling thread's OpenMP threads, which torch shares, to intra_threads
            torch.set_num_threads(torch_threads)

    def _seeded_translator(self, settings: GenerationSettings):
        """A translator whose sampling starts from ``settings.seed``.

        CTranslate2 seeds each worker thread's generator once, when that thread first samples
        (``set_random_seed`` only sets the seed for generators created later), so a translator
        that has sampled before cannot be re-seeded. Sampling therefore gets a fresh translator
        (a reload from the cache: ~0.1 s for flan-t5-small int8); greedy and beam reuse the loaded one.
        """
        import ctranslate2

        if settings.strategy != "sampling":
            return self.translator
        ctranslate2.set_random_seed(settings.seed)
        return self._translator(self.folder, self.device, self.compute_type, self.threads, self.workers)

    def generate(self, prompts: Sequence[str], settings: GenerationSettings, batch_size: int = 8,
                 max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS, on_batch: Callable[[int, int], None] | None = None,
                 streams: dict[int, Callable[[str], None]] | None = None, parts: int = 1) -> list[str]:
        """One summary per prompt (same contract as :func:`summarizer.inference.generation.generate_texts`).

        Prompts are tokenized and truncated to ``max_input_tokens`` as on the torch path, grouped
        in length-sorted batches of ``batch_size``; the seed applies from the first batch.
        ``streams`` (prompt index -> callback) get each row's text so far after every token
        (``translate_batch``'s step callback; greedy and sampling only). Up to ``parts`` batches
        (at most the translator's :attr:`workers`) run at once, except when sampling, whose
        draws would then depend on which batch a worker took first.

        Raises:
            BackendError: a setting CTranslate2 cannot honour.
        """
        opts = translate_options(settings)
        translator = self._seeded_translator(settings)
        tok = self.tokenizer
        with tokenizer_lock(tok):
            sources = [tok.convert_ids_to_tokens(tok.encode(p, truncation=True, max_length=max_input_tokens))
                       for p in prompts]
        results, done = [""] * len(prompts), 0

        def run(batch: list[int]) -> list[int]:
            extra = self._stream_callback(batch, streams) if streams and opts["beam_size"] == 1 else {}
            out = translator.translate_batch([sources[i] for i in batch], **opts, **extra)
            with tokenizer_lock(tok):
                for i, r in zip(batch, out):
                    results[i] = tok.decode(tok.convert_tokens_to_ids(r.hypotheses[0]), skip_special_tokens=True).strip()
            return batch

        batches = length_sorted_batches([len(s) for s in sources], batch_size)
        parts = 1 if settings.strategy == "sampling" else max(1, min(parts, self.workers, len(batches)))
        with contextlib.ExitStack() as stack:  # a pool only when batches run at once
            pool = stack.enter_context(ThreadPoolExecutor(parts, thread_name_prefix="ct2-part")) if parts > 1 else None
            for batch in (pool.map(run, batches) if pool else map(run, batches)):
                done += len(batch)
                if on_batch:
                    on_batch(done, len(prompts))
        return results

    def _stream_callback(self, batch: list[int], streams: dict[int, Callable[[str], None]]) -> dict:
        """``translate_batch``'s ``callback``: one step result per row and token (its ``batch_id``
        is the row in this batch), decoded to the row's text so far for rows with a stream."""
        wanted = {k: streams[i] for k, i in enumerate(batch) if i in streams}
        if not wanted:
            return {}
        tokens: dict[int, list[int]] = {k: [] for k in wanted}

        def step(result) -> bool:
            if result.batch_id in wanted:
                tokens[result.batch_id].append(result.token_id)
                with tokenizer_lock(self.tokenizer):
                    text = self.tokenizer.decode(tokens[result.batch_id], skip_special_tokens=True).strip()
                wanted[result.batch_id](text)
            return False  # False: go on decoding
        return {"callback": step}


class CT2Engine:
    """Every slot on its own CTranslate2 model, converted and loaded on first use.

    Args:
        config: the slots' sources (shared with :class:`~summarizer.inference.slots.ModelSlots`).
        device: the torch device whose type (``cpu``/``cuda``) CTranslate2 runs on.
        compute_type: ``auto``, ``int8``, ``float32`` or ``int8_float16``.
        base_tokenizer: returns the base model's tokenizer (the slots keep one per base source).
        on_progress: called with one line per conversion stage; default: logging.

    Methods are called under the slots' lock (:class:`~summarizer.inference.slots.ModelSlots`).

    Raises:
        BackendError: unknown compute type, or one this device lacks.
    """

    name = "ct2"

    def __init__(self, config: SlotConfig, device: torch.device, compute_type: str,
                 base_tokenizer: Callable[[], object], on_progress: Callable[[str], None] | None = None):
        self.config, self.device, self.compute_type = config, device, compute_type
        self.compute = resolve_compute_type(compute_type, device.type)
        self.base_tokenizer, self.on_progress = base_tokenizer, on_progress
        self.models: dict[str, tuple[tuple, CT2Model]] = {}  # slot -> (conversion key, model)
        self.cores = max(1, torch.get_num_threads())  # the physical cores unless the user or a Ray replica set it

    @property
    def layout(self) -> ThreadLayout:
        """The CPU threads of the translators (:class:`ThreadLayout`) for :attr:`cores`; on CUDA
        the four slots run side by side on the GPU and every translator keeps every core."""
        cores = self.cores
        if self.device.type != "cpu":
            return ThreadLayout(cores=cores, intra=cores, inter=1, side_by_side=len(SLOTS))
        return ThreadLayout.for_cores(cores, len(SLOTS))

    def is_loaded(self, slot: str) -> bool:
        return slot in self.models

    def drop(self, slot: str) -> None:
        """Forget models made from ``slot``'s old source (the adapters' too for the base)."""
        for name in ([slot] + list(ADAPTER_SLOTS) if slot == "base" else [slot]):
            self.models.pop(name, None)

    def load(self, slot: str) -> None:
        self.model(slot)

    def tokenizer_of(self, slot: str):
        """The base tokenizer, or the full model's own for ``full`` (no torch model is loaded)."""
        return self.model("full").tokenizer if slot == "full" else self.base_tokenizer()

    def loaded_tokenizer(self, slot: str):
        """The full model's tokenizer if its CTranslate2 model is loaded, else None (the base's is
        the slots' own, :meth:`~summarizer.inference.slots.ModelSlots.base_tokenizer`); never loads."""
        entry = self.models.get("full") if slot == "full" else None
        return entry[1].tokenizer if entry else None

    def model(self, slot: str) -> CT2Model:
        """``slot``'s CTranslate2 model, converted (cached on disk) and loaded on first use.

        Raises:
            SlotError: empty slot, wrong kind of model, a failed conversion, or a cached
                conversion that does not load (the message names the folder to delete).
        """
        source = getattr(self.config, slot)
        if not source:
            raise SlotError(EMPTY_SLOT_HELP[slot])
        base = self.config.base if slot in ADAPTER_SLOTS else None
        layout = self.layout
        key = (source, base, self.compute, layout.intra, layout.inter)  # other threads (cores changed): loaded anew
        if slot in self.models and self.models[slot][0] == key:
            return self.models[slot][1]
        check_kind(slot, source)
        try:
            folder = ct2_convert.convert(source, ct2_convert.STORED[self.compute], base, self.on_progress)
        except ct2_convert.ConversionError as err:
            raise SlotError(f"The {slot} slot: {err}") from err
        tokenizer = self.base_tokenizer() if slot != "full" else load_tokenizer(source, slot)
        try:
            model = CT2Model.load(folder, tokenizer, self.device.type, self.compute, layout.intra, layout.inter)
        except (RuntimeError, ValueError, OSError) as err:  # ctranslate2 says RuntimeError for a bad file
            raise SlotError(f"The {slot} slot: could not load its CTranslate2 model from the cache folder "
                            f"{folder}: {err}. Delete that folder and try again (it is converted anew)."
                            ) from err
        self.models[slot] = (key, model)
        return model

    def parameters(self, slot: str) -> tuple[int, int] | None:
        """(trained, total) parameters without loading torch weights, or None to load them.

        Counts come from the config on the meta device (no memory) and, for an adapter, from the
        tensor shapes in its ``adapter_model.safetensors`` header; None when that file is absent.
        """
        model = self.config.full if slot == "full" else self.config.base
        total = config_parameters(model)
        if slot not in ADAPTER_SLOTS:
            return total, total
        own = _adapter_parameters(getattr(self.config, slot))
        return None if own is None else (own, total + own)

    def generate(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings,
                 batch_size: int, on_batch: Callable[[int, int], None] | None) -> dict[str, list[str]]:
        """Each slot on its own CTranslate2 model, one after the other (contract of
        :meth:`summarizer.inference.slots.ModelSlots.generate`), up to :meth:`ThreadLayout.parts`
        of its batches at once (one thread each on 2 cores, so both cores work; sampling runs one
        batch at a time, for its seed)."""
        try:
            translate_options(settings)  # refuse unsupported settings before loading
        except BackendError as err:
            raise SlotError(str(err)) from err
        models = {slot: self.model(slot) for slot in slots}
        parts = self.layout.parts(1)  # one slot at a time: its batches use every core (2 at once here)
        return {slot: model.generate(prompts, settings, batch_size=batch_size, on_batch=on_batch,
                                      max_input_tokens=self.config.max_input_tokens, parts=parts)
                for slot, model in models.items()}

    def generate_rows(self, rows: Sequence[tuple[str, str]], settings: GenerationSettings,
                      streams: dict[int, Callable[[str], None]] | None = None) -> list[str]:
        """One text per ``(slot, prompt)`` row, in row order: one ``translate_batch`` per slot.

        CTranslate2 does not merge separate calls, so the rows of several requests are given to
        each slot's translator as one batch. Slots run side by side in threads (CTranslate2
        releases the GIL), at most :attr:`ThreadLayout.side_by_side` at once so that the threads
        never exceed the cores, except when sampling, whose seed is per translator and call; a
        slot alone splits its rows into :meth:`ThreadLayout.parts` batches that run at once, on a
        CPU of at most :data:`CPU_BATCH_ROWS` rows each (length-sorted).

        Raises:
            SlotError: a slot is empty, cannot be converted or loaded, or a setting is unsupported.
        """
        try:
            translate_options(settings)
        except BackendError as err:
            raise SlotError(str(err)) from err
        streams = streams or {}
        by_slot: dict[str, list[int]] = {}
        for i, (slot, _) in enumerate(rows):
            by_slot.setdefault(slot, []).append(i)
        models = {slot: self.model(slot) for slot in by_slot}  # loaded here, under the slots' lock
        layout = self.layout
        at_once = 1 if settings.strategy == "sampling" else min(len(by_slot), layout.side_by_side)
        parts = 1 if settings.strategy == "sampling" else layout.parts(at_once)  # a sample's draws follow its batch

        def run(slot: str) -> list[str]:
            index = by_slot[slot]
            own = {k: streams[i] for k, i in enumerate(index) if i in streams}
            size = -(-len(index) // parts)
            if self.device.type == "cpu":
                size = min(size, CPU_BATCH_ROWS)
            return models[slot].generate([rows[i][1] for i in index], settings, batch_size=size,
                                         max_input_tokens=self.config.max_input_tokens,
                                         streams=own, parts=parts)

        out = [""] * len(rows)
        if at_once > 1:
            with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="ct2-slot") as pool:
                texts = dict(zip(by_slot, pool.map(run, by_slot)))
        else:
            texts = {slot: run(slot) for slot in by_slot}
        for slot, index in by_slot.items():
            for i, text in zip(index, texts[slot]):
                out[i] = text
        return out


def load_tokenizer(source: str, slot: str):
    """``AutoTokenizer`` of ``source``.

    Raises:
        SlotError: it cannot be loaded (the message names the slot and the source).
    """
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise SlotError(f"Could not load the {slot} tokenizer from {source!r}: {err}") from err


def _adapter_parameters(source: str) -> int | None:
    """Elements in a peft adapter's ``adapter_model.safetensors`` (read from its header), or None."""
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    path = Path(source) / "adapter_model.safetensors"
    if not path.is_file():
        try:
            path = Path(hf_hub_download(source, "adapter_model.safetensors"))
        except (OSError, ValueError):  # not a hub id, or the hub copy has only pickles
            return None
    with safe_open(str(path), "pt") as weights:
        return sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
