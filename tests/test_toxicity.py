import pytest
import torch

from summarizer.toxicity import ToxicityScorer, label_index

HATEFUL = "#Person1# books a table. You are stupid scum."
NEUTRAL = "#Person1# books a table for two at seven tonight."


def test_label_index_by_name():
    assert label_index({0: "hate", 1: "nothate"}, "nothate") == 1
    assert label_index({0: "NOTHATE", 1: "HATE"}, "hate") == 1
    with pytest.raises(ValueError, match="no 'nothate' label"):
        label_index({0: "LABEL_0", 1: "LABEL_1"}, "nothate")


def test_reward_taken_by_label_name_not_position(tiny_classifier, tiny_classifier_reversed):
    for folder in (tiny_classifier, tiny_classifier_reversed):
        scorer = ToxicityScorer(str(folder))
        hate, neutral = scorer.score([HATEFUL, NEUTRAL])
        # Whatever the label order, hateful text gets the lower nothate logit and higher P(hate).
        assert hate.reward < neutral.reward
        assert hate.p_hate > 0.5 > neutral.p_hate
        logits = scorer._model(**scorer._tokenizer([NEUTRAL], return_tensors="pt")).logits[0]
        idx = scorer._model.config.label2id["nothate"]
        assert neutral.reward == pytest.approx(float(logits[idx]), abs=1e-5)


def test_classifier_without_labels_fails_clearly(tmp_path):
    from tests.tiny_models import build_classifier

    folder = build_classifier(tmp_path / "bad", labels=("LABEL_0", "LABEL_1"), steps=1)
    with pytest.raises(ValueError, match="no 'nothate' label"):
        ToxicityScorer(str(folder)).score(["hello"])


def test_rewards_tensor_shape(tiny_classifier):
    r = ToxicityScorer(str(tiny_classifier)).rewards([NEUTRAL, HATEFUL, ""])
    assert r.shape == (3,) and r[0] > r[1]


def test_scores_say_how_many_tokens_were_read(tiny_classifier):
    scorer = ToxicityScorer(str(tiny_classifier), max_length=512)
    long_text = " ".join(["table"] * 2000)
    short, long = scorer.score([NEUTRAL, long_text])
    n_short = len(scorer._tokenizer(NEUTRAL).input_ids)
    n_long = len(scorer._tokenizer(long_text).input_ids)
    assert (short.n_tokens, short.tokens_read, short.truncated) == (n_short, n_short, False)
    assert (long.n_tokens, long.tokens_read, long.truncated) == (n_long, 512, True) and n_long > 512
    # The score of a truncated text is the model's output on its first 512 tokens.
    ids = scorer._tokenizer(long_text, return_tensors="pt").input_ids  # (1, n_long)
    first = torch.cat([ids[:, :511], ids[:, -1:]], dim=1)  # 511 tokens + </s>, as truncation makes
    logits = scorer._model(input_ids=first).logits[0]
    assert long.reward == pytest.approx(float(logits[scorer._model.config.label2id["nothate"]]), abs=1e-4)
