"""The app tokenizes from many threads at once (each request builds its prompt while the batcher
encodes, streams and decodes a batch); transformers 5's fast tokenizers are not thread-safe
(huggingface/transformers#47085), which showed as a rare "Unable to create tensor" answer.
Every call site holds :func:`summarizer.tokenizer_lock.tokenizer_lock`."""
from __future__ import annotations

import threading

from summarizer.inference.generation import GenerationSettings, generate_texts
from summarizer.prompts import count_tokens, shot_costs, Example
from summarizer.tokenizer_lock import tokenizer_lock


def test_prompt_building_beside_batched_generation_never_fails(tiny_t5):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).eval()
    prompts = ["Summarize: #Person1#: hello, how are you doing today? " * k for k in range(1, 9)]
    settings = GenerationSettings(max_new_tokens=2)
    errors, expected = [], generate_texts(model, tokenizer, prompts, settings, batch_size=8)

    def generating():
        for _ in range(15):
            try:
                streamed = {}
                out = generate_texts(model, tokenizer, prompts, settings, batch_size=8,
                                     streams={0: lambda text: streamed.__setitem__(0, text)})
                assert out == expected, out
            except Exception as err:  # noqa: BLE001 - every failure is the finding
                errors.append(repr(err)[:120])

    def building():
        for _ in range(300):
            try:
                assert count_tokens(tokenizer, prompts[-1]) > 50
                assert len(shot_costs(tokenizer, [Example("#Person1#: Hi.", "A greeting.")])) == 1
            except Exception as err:  # noqa: BLE001
                errors.append(repr(err)[:120])

    threads = [threading.Thread(target=f) for f in (generating, building) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_one_lock_per_tokenizer_and_it_goes_with_it():
    import gc

    class Tok:
        pass

    a, b = Tok(), Tok()
    assert tokenizer_lock(a) is tokenizer_lock(a) and tokenizer_lock(a) is not tokenizer_lock(b)
    from summarizer import tokenizer_lock as module

    key = id(a)
    assert key in module._LOCKS
    del a
    gc.collect()
    assert key not in module._LOCKS
