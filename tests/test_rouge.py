import pytest

from summarizer.evaluation.rouge import score_corpus, score_one, sentences_per_line

PRED = "the cat sat on the mat"
REF = "the cat is on the mat"


def test_single_reference_hand_checked():
    s = score_one(PRED, [REF])["best"]
    # unigrams: 5 of 6 match each way -> F = 5/6; bigrams: 3 of 5 -> 0.6; LCS "the cat on the mat" = 5
    assert s["rouge1"] == pytest.approx(5 / 6)
    assert s["rouge2"] == pytest.approx(3 / 5)
    assert s["rougeL"] == pytest.approx(5 / 6)
    assert s["rougeLsum"] == pytest.approx(5 / 6)


def test_multi_reference_best_and_mean():
    s = score_one(PRED, [REF, "a dog ran away"])
    assert s["best"]["rouge1"] == pytest.approx(5 / 6)
    assert s["mean"]["rouge1"] == pytest.approx(5 / 12)
    assert s["mean"]["rouge2"] == pytest.approx(0.3)


def test_stemming_is_on():
    assert score_one("the cats were running", ["the cat was run"])["best"]["rouge1"] == pytest.approx(0.75)


def test_lsum_uses_sentences():
    assert sentences_per_line("A b. C d! E?") == "A b.\nC d!\nE?"
    # Reordered sentences: Lsum (summary-level LCS) stays perfect, sentence-agnostic L drops.
    s = score_one("he left. she stayed.", ["she stayed. he left."])["best"]
    assert s["rougeLsum"] == pytest.approx(1.0)
    assert s["rougeL"] < 1.0


def test_corpus_is_mean_times_100():
    c = score_corpus([PRED, "x y"], [[REF], ["x y"]])
    assert c["rouge1"] == pytest.approx(100 * (5 / 6 + 1) / 2)


def test_errors():
    with pytest.raises(ValueError):
        score_corpus([PRED], [])
    with pytest.raises(ValueError):
        score_one(PRED, [])
    with pytest.raises(ValueError):
        score_corpus([PRED], [[REF]], rule="median")


def test_lab_pairs_are_the_hub_csv_rows():
    from summarizer.evaluation.rouge import lab_pairs, score_lab

    preds, refs = lab_pairs([PRED, "x y"], [[REF, "a dog ran away"], "x y"])
    assert preds == [PRED, PRED, "x y"] and refs == [REF, "a dog ran away", "x y"]
    assert score_lab([PRED, "x y"], [[REF, "a dog ran away"], ["x y"]])["rouge1"] == pytest.approx(100 * (5 / 6 + 0 + 1) / 3)
    # Sentences are not put on lines: a reordered two-sentence summary loses ROUGE-Lsum.
    assert score_lab(["he left. she stayed."], [["she stayed. he left."]])["rougeLsum"] < 100
    with pytest.raises(ValueError, match="2 predictions but 1"):
        score_lab([PRED, PRED], [[REF]])


def test_the_remembering_tokenizer_gives_rouge_scores_tokens_and_scores_on_real_summaries(dialogsum_dir):
    """MemoTokenizer's tokens and the scores made with it equal rouge_score's own
    ``DefaultTokenizer(use_stemmer=True)`` and ``RougeScorer(use_stemmer=True)``, asked twice
    (the second answer comes from its memory), on DialogSum test references."""
    from rouge_score import rouge_scorer, tokenizers

    from summarizer.data import load_split
    from summarizer.evaluation.rouge import ROUGE_KEYS, MemoTokenizer, _scorer

    refs = [list(r) for r in load_split(str(dialogsum_dir), "test")["references"][:60]]
    texts = [r for group in refs for r in group] + ["Running runners ran; #Person1# didn't RUN!", ""]
    own, memo = tokenizers.DefaultTokenizer(use_stemmer=True), MemoTokenizer()
    for text in texts * 2:
        assert memo.tokenize(text) == own.tokenize(text)
    memo.tokenize(texts[0]).append("changed")  # a caller's list is its own: the memory stays
    assert memo.tokenize(texts[0]) == own.tokenize(texts[0])
    plain = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    for a, b in zip(texts[1::7], texts[::5]):
        assert _scorer().score(a, b) == plain.score(a, b)
