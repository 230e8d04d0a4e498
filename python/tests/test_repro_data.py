"""The digits reproduction's data (qslaw_tools.repro.build_data): built twice
into temporary directories it is byte-identical; every record is well
formed (lengths, masks, answers matching scikit-learn's labels, images
present, 16 image tokens); the split is disjoint; the committed tokenizer,
corpus and FP model agree with the geometry (sequence length, image size,
image tokens, vocabulary)."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tokenizers")
from tokenizers import Tokenizer  # noqa: E402

from qslaw_tools.make_train_fixture import write_png  # noqa: E402
from qslaw_tools.repro import build_data as B  # noqa: E402
from qslaw_tools.repro import common as C  # noqa: E402

TOKENIZER = os.path.join(C.DATA_DIR, "tokenizer.json")
CORPUS = os.path.join(C.DATA_DIR, "corpus.txt")
MODEL = os.path.join(C.DATA_DIR, C.MODEL_NAME + ".onnx")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    a = str(tmp_path_factory.mktemp("a"))
    b = str(tmp_path_factory.mktemp("b"))
    return a, B.build(a), b, B.build(b)


def test_deterministic(built):
    a, ma, b, mb = built
    assert ma == mb
    # The committed model was trained on exactly these records.
    committed = os.path.join(C.DATA_DIR, "manifest.json")
    if os.path.exists(committed):
        with open(committed) as f:
            assert json.load(f) == ma
    names = sorted(os.listdir(os.path.join(a, "images")))
    assert len(names) == 1797
    for n in names[::97]:
        with open(os.path.join(a, "images", n), "rb") as f, \
                open(os.path.join(b, "images", n), "rb") as g:
            assert f.read() == g.read()
    for n in ["vqa_train.json", "vqa_heldout.json", "text_train.txt", "text_heldout.txt"]:
        with open(os.path.join(a, n), "rb") as f, open(os.path.join(b, n), "rb") as g:
            assert f.read() == g.read(), n


def test_counts_and_split(built):
    a, m, _, _ = built
    f = m["files"]
    assert f["train_mm.jsonl"]["records"] == 1438
    assert f["heldout_mm.jsonl"]["records"] == 359
    assert f["train.jsonl"]["records"] == f["train_mm.jsonl"]["records"] + \
        f["train_text.jsonl"]["records"]
    assert f["train_text.jsonl"]["records"] > 800 and f["heldout_text.jsonl"]["records"] > 100
    train = {r["id"] for r in C.load_records(os.path.join(a, "train_mm.jsonl"))}
    held = {r["id"] for r in C.load_records(os.path.join(a, "heldout_mm.jsonl"))}
    assert not train & held and len(train | held) == 1797
    with open(os.path.join(a, "text_train.txt")) as f:
        t = f.read()
    with open(os.path.join(a, "text_heldout.txt")) as f:
        h = f.read()
    assert 0.1 < len(h) / (len(t) + len(h)) < 0.2
    # No held-out paragraph of some length appears verbatim in the training text.
    paras = [p for p in h.split("\n\n") if len(p) > 200]
    assert paras and sum(p in t for p in paras) < len(paras) // 4


def test_multimodal_records(built):
    from sklearn.datasets import load_digits
    target = load_digits().target
    a = built[0]
    tok = Tokenizer.from_file(TOKENIZER)
    for name in ("train_mm.jsonl", "heldout_mm.jsonl"):
        path = os.path.join(a, name)
        for r in C.load_records(path):
            ids, labels = r["input_ids"], r["labels"]
            assert set(r) == {"id", "input_ids", "labels", "image"}
            assert len(ids) == len(labels) <= C.SEQ_LEN
            assert all(0 <= i < C.VOCAB_SIZE for i in ids)
            assert ids[0] == C.BOS_ID and ids[-1] == C.EOS_ID == labels[-1]
            img = [k for k, i in enumerate(ids) if i == C.IMAGE_TOKEN_ID]
            assert len(img) == C.IMAGE_TOKENS
            assert img == list(range(img[0], img[0] + C.IMAGE_TOKENS))
            first = next(k for k, l in enumerate(labels) if l != -100)
            assert labels[first:] == ids[first:] and first > img[-1]
            assert tok.decode(ids[first:-1]).strip() == C.DIGIT_WORDS[target[int(r["id"][6:])]]
            assert os.path.isfile(os.path.join(a, r["image"]))
            assert r["image"] == f"images/{r['id']}.png"


def test_text_records(built):
    a = built[0]
    for name in ("train_text.jsonl", "heldout_text.jsonl"):
        for r in C.load_records(os.path.join(a, name)):
            assert set(r) == {"id", "input_ids", "labels"}
            assert r["labels"] == r["input_ids"] and len(r["input_ids"]) == C.CHUNK_LEN
            assert C.IMAGE_TOKEN_ID not in r["input_ids"] and 4 not in r["input_ids"]  # <unk>


def test_images_and_pipeline(built, tmp_path):
    a = built[0]
    px = C.read_png(os.path.join(a, "images", "digit_0000.png"))
    assert px.shape == (C.IMAGE_SIZE, C.IMAGE_SIZE, 3) and px.dtype == np.uint8
    from sklearn.datasets import load_digits
    assert np.array_equal(px, B.digit_png(load_digits().images[0]))
    # Same size: the trainer's pipeline is only the normalisation.
    want = ((px / 255.0 - C.CLIP_MEAN) / C.CLIP_STD).transpose(2, 0, 1)
    assert np.allclose(C.preprocess(px), want, atol=1e-6)
    # Shortest side resized, centre crop: a 2x upscaled 64x80 image.
    big = np.kron(px, np.ones((2, 2, 1), np.uint8))
    pad = np.full((64, 8, 3), 255, np.uint8)
    big = np.concatenate([pad, big, pad], 1)
    write_png(str(tmp_path / "big.png"), big)
    out = C.preprocess(C.read_png(str(tmp_path / "big.png")))
    assert out.shape == (3, C.IMAGE_SIZE, C.IMAGE_SIZE)
    assert np.abs(out - C.preprocess(px)).max() < 0.6  # bilinear blur at the block edges


def test_tokenizer_and_corpus():
    tok = Tokenizer.from_file(TOKENIZER)
    assert tok.get_vocab_size() == C.VOCAB_SIZE
    for i, name in enumerate(C.SPECIALS[:4]):
        assert tok.token_to_id(name) == i
    assert tok.token_to_id("\n") is not None
    for t in C.ROLE_TOKENS:
        assert len(tok.encode(t).ids) == 1
    assert os.path.getsize(CORPUS) <= 100 * 1024
    with open(CORPUS, encoding="ascii") as f:
        text = f.read()
    assert len(text.split(B.DOC_SEP)) == len(B.LICENSES)


@pytest.mark.skipif(not os.path.exists(MODEL), reason="FP model not built")
def test_model_geometry():
    import onnx
    m = onnx.load(MODEL)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    assert shapes == {"input_ids": [1, C.SEQ_LEN], "attention_mask": [1, C.SEQ_LEN],
                      "pixel_values": [1, 3, C.IMAGE_SIZE, C.IMAGE_SIZE]}
    out = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert out == [1, C.SEQ_LEN, C.VOCAB_SIZE]
    conv = [n for n in m.graph.node if n.op_type == "Conv"]
    assert len(conv) == 1  # the patch embedding
    kernel = next(a.ints for a in conv[0].attribute if a.name == "kernel_shape")
    assert list(kernel) == [C.PATCH_SIZE, C.PATCH_SIZE]
    assert (C.IMAGE_SIZE // kernel[0]) ** 2 == C.IMAGE_TOKENS
    with open(os.path.splitext(MODEL)[0] + ".json") as f:
        meta = json.load(f)
    assert meta["image_tokens"] == C.IMAGE_TOKENS and meta["image_token_id"] == C.IMAGE_TOKEN_ID
    assert meta["heldout_onnxruntime"]["vqa_accuracy"] > 0.9
