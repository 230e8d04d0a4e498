"""qslaw_tools.prepare_data: template v1 ids and label masking on
hand-written conversations (a word-level tokenizer whose ids are known by
heart, and a trained BPE where a token merges the space before an answer),
image token expansion, relative image paths, --max-len skip/truncate, text
chunking, and each malformed input's message and exit status."""
import json
import os

import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from qslaw_tools import prepare_data as P  # noqa: E402

WORDS = ["<pad>", "<s>", "</s>", "<image>", "<unk>", "USER:", "ASSISTANT:", "sys",
         "what", "is", "this?", "a", "cat", "dog", "and", "the", "end"]
V = {w: i for i, w in enumerate(WORDS)}
M = -100


@pytest.fixture
def wordtok(tmp_path):
    tok = Tokenizer(models.WordLevel(V, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<pad>", "<s>", "</s>", "<image>"])
    path = str(tmp_path / "word.json")
    tok.save(path)
    return path


@pytest.fixture
def bpetok(tmp_path):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never")
    tr = trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>", "<s>", "</s>", "<image>",
                                                            "<unk>"], show_progress=False)
    tok.train_from_iterator(["what is this? a cat and a dog", "the cat is a cat",
                             "USER: ASSISTANT: what is the end"] * 5, tr)
    path = str(tmp_path / "bpe.json")
    tok.save(path)
    return path


def conv(cid="c1", image="img/a.png", turns=(("<image>\nwhat is this?", "a cat"),)):
    c = {"id": cid, "conversations": []}
    if image is not None:
        c["image"] = image
    for q, a in turns:
        c["conversations"] += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return c


def write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(p)


@pytest.fixture
def image(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"not decoded here")
    return "img/a.png"


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def run(tmp_path, tok, convs=None, text=None, extra=(), out="out/records.jsonl"):
    args = ["--tokenizer", tok, "-o", str(tmp_path / out)]
    if convs is not None:
        args += ["--conversations", write(tmp_path, "convs.json", convs)]
    if text is not None:
        args += ["--text", write(tmp_path, "corpus.txt", text)]
    return P.main(args + list(extra))


def test_single_turn_ids_and_labels(tmp_path, wordtok, image, capsys):
    assert run(tmp_path, wordtok, [conv()], extra=["--system", "sys", "--image-tokens", "3"]) == 0
    (r,) = read(tmp_path / "out" / "records.jsonl")
    assert r["id"] == "c1"
    assert r["image"] == os.path.join("..", "img", "a.png")  # relative to the output dir
    assert r["input_ids"] == [1, V["sys"], V["USER:"], 3, 3, 3, V["what"], V["is"], V["this?"],
                              V["ASSISTANT:"], V["a"], V["cat"], 2]
    assert r["labels"] == [M] * 10 + [V["a"], V["cat"], 2]
    assert "1 multimodal, 0 text" in capsys.readouterr().err


def test_multi_turn_and_text_only(tmp_path, wordtok, image):
    convs = [conv(turns=[("<image>\nwhat is this?", "a cat"), ("and this?", "a dog")]),
             conv("t", image=None, turns=[("what is this?", "the end")])]
    assert run(tmp_path, wordtok, convs,
               extra=["--system", "", "--bos", "", "--image-tokens", "2"]) == 0
    mm, txt = read(tmp_path / "out" / "records.jsonl")
    assert mm["input_ids"] == [V["USER:"], 3, 3, V["what"], V["is"], V["this?"], V["ASSISTANT:"],
                               V["a"], V["cat"], 2,
                               V["USER:"], V["and"], V["this?"], V["ASSISTANT:"], V["a"],
                               V["dog"], 2]
    assert mm["labels"] == [M] * 7 + [V["a"], V["cat"], 2] + [M] * 4 + [V["a"], V["dog"], 2]
    assert "image" not in txt
    assert txt["input_ids"] == [V["USER:"], V["what"], V["is"], V["this?"], V["ASSISTANT:"],
                                V["the"], V["end"], 2]
    assert txt["labels"] == [M] * 5 + [V["the"], V["end"], 2]


def test_image_token_id_option_and_default_id(tmp_path, wordtok, image):
    c = conv()
    del c["id"]
    assert run(tmp_path, wordtok, [c], extra=["--system", "", "--image-token-id", "4",
                                              "--image-tokens", "2"]) == 0
    (r,) = read(tmp_path / "out" / "records.jsonl")
    assert r["id"] == "convs.json:0"
    assert r["input_ids"][:4] == [1, V["USER:"], 4, 4]


def test_bpe_answer_span(tmp_path, bpetok, image):
    """A Metaspace BPE puts the separator space into the answer's first
    token; that token counts, the prompt's tokens do not."""
    tok = Tokenizer.from_file(bpetok)
    assert run(tmp_path, bpetok, [conv(turns=[("<image>\nwhat is this?", "a cat and a dog")])],
               extra=["--system", "", "--image-tokens", "4"]) == 0
    (r,) = read(tmp_path / "out" / "records.jsonl")
    ids, labels = r["input_ids"], r["labels"]
    assert ids.count(3) == 4 and ids[-1] == 2 and labels[-1] == 2
    first = next(i for i, l in enumerate(labels) if l != M)
    assert all(l == i for l, i in zip(labels[first:], ids[first:]))  # contiguous answer
    assert tok.decode(ids[first:-1]).strip() == "a cat and a dog"
    assert "ASSISTANT" in tok.decode(ids[:first]).replace(" ", "")


def test_max_len_skip_and_truncate(tmp_path, wordtok, image, capsys):
    convs = [conv("short"), conv("long", turns=[("<image>\nwhat is this?", "a cat"),
                                                ("what is this?", "a dog and a cat")])]
    extra = ["--system", "", "--image-tokens", "2", "--max-len", "12"]
    assert run(tmp_path, wordtok, convs, extra=extra) == 0
    assert [r["id"] for r in read(tmp_path / "out" / "records.jsonl")] == ["short"]
    assert "skipped 1 longer than --max-len 12" in capsys.readouterr().err
    assert run(tmp_path, wordtok, convs, extra=extra + ["--truncate"]) == 0
    recs = read(tmp_path / "out" / "records.jsonl")
    assert [len(r["input_ids"]) for r in recs] == [11, 12]
    assert recs[1]["labels"][-2:] == [2, M]  # "... a cat </s> USER:" cut after USER:
    assert "truncated 1" in capsys.readouterr().err
    # A cut through the image tokens is skipped even with --truncate.
    assert run(tmp_path, wordtok, [conv()], extra=["--system", "", "--image-tokens", "8",
                                                   "--max-len", "5", "--truncate"]) == 0
    assert read(tmp_path / "out" / "records.jsonl") == []


def test_text_chunks(tmp_path, wordtok):
    text = "a cat and a dog\nthe end is the end a cat"
    assert run(tmp_path, wordtok, text=text, extra=["--chunk-len", "4"]) == 0
    recs = read(tmp_path / "out" / "records.jsonl")
    ids = [V[w] for w in text.split()]
    assert [r["input_ids"] for r in recs] == [ids[0:4], ids[4:8], ids[8:12]]
    assert all(r["labels"] == r["input_ids"] and "image" not in r for r in recs)
    assert [r["id"] for r in recs] == ["corpus.txt:0", "corpus.txt:1", "corpus.txt:2"]
    assert run(tmp_path, wordtok, text=text, extra=["--chunk-len", "5", "--keep-last-chunk"]) == 0
    assert [len(r["input_ids"]) for r in read(tmp_path / "out" / "records.jsonl")] == [5, 5, 2]


def test_conversations_and_text_together(tmp_path, wordtok, image):
    args = ["--tokenizer", wordtok, "-o", str(tmp_path / "all.jsonl"),
            "--conversations", write(tmp_path, "c.json", [conv()]),
            "--text", write(tmp_path, "t.txt", "a cat a dog"), "--chunk-len", "2",
            "--image-tokens", "1", "--system", ""]
    assert P.main(args) == 0
    recs = read(tmp_path / "all.jsonl")
    assert ["image" in r for r in recs] == [True, False, False]
    assert recs[0]["image"] == os.path.join("img", "a.png")


def turns(*pairs):
    return [{"from": f, "value": v} for f, v in pairs]


BAD = [
    ("missing conversations", [{"id": "x", "image": "img/a.png"}],
     "record 0 (id 'x'): missing field \"conversations\""),
    ("first turn gpt", [{"id": "x", "conversations": turns(("gpt", "a"), ("human", "b"))}],
     "conversations[0].from: the first turn must be \"human\", got 'gpt'"),
    ("unknown from", [conv(), {"id": "y", "conversations": turns(("human", "a"), ("bot", "b"))}],
     "record 1 (id 'y'): conversations[1].from: unknown speaker 'bot'"),
    ("no placeholder", [conv(turns=[("what is this?", "a cat")])],
     "conversations[0].value: the record has an \"image\", so the first human turn must "
     "hold exactly one <image> placeholder (found 0)"),
    ("placeholder without image", [conv(image=None)],
     "conversations[0].value: <image> placeholder but the record has no \"image\""),
    ("placeholder in later turn", [conv(turns=[("<image> what", "a"), ("<image>", "b")])],
     "conversations[2].value: <image> placeholder but only the first human turn may hold it"),
    ("not alternating", [{"id": "x", "conversations": turns(("human", "a"), ("human", "b"))}],
     "conversations[1].from: turns must alternate human/gpt, expected 'gpt', got 'human'"),
    ("ends with human", [{"id": "x", "conversations": turns(("human", "a"))}],
     "conversations[0]: the conversation ends with a human turn"),
    ("missing value", [{"id": "x", "conversations": [{"from": "human"}]}],
     "conversations[0]: missing field \"value\""),
    ("value not string", [{"id": "x", "conversations": [{"from": "human", "value": 3}]}],
     "conversations[0].value: must be a string"),
    ("missing image file", [conv(image="img/none.png")],
     "record 0 (id 'c1'): image: file not found"),
    ("not an array", {"id": "x"}, "expected a JSON array of conversation records"),
    ("malformed JSON", "[{\"id\": ", "convs.json: malformed JSON"),
]


@pytest.mark.parametrize("name,convs,msg", BAD, ids=[b[0] for b in BAD])
def test_malformed_conversations(tmp_path, wordtok, image, capsys, name, convs, msg):
    assert run(tmp_path, wordtok, convs, extra=["--image-tokens", "2"]) == 1
    err = capsys.readouterr().err
    assert "prepare_data: error: " in err and msg in err, err
    assert "convs.json" in err
    assert not (tmp_path / "out" / "records.jsonl").exists()


def test_tokenizer_without_special_tokens(tmp_path, wordtok, image, capsys):
    assert run(tmp_path, wordtok, [conv()], extra=["--eos", "<eos>", "--image-tokens", "2"]) == 1
    assert "has no token '<eos>' (needed by --eos)" in capsys.readouterr().err
    assert run(tmp_path, wordtok, [conv()], extra=["--bos", "<bos>", "--image-tokens", "2"]) == 1
    assert "has no token '<bos>' (needed by --bos)" in capsys.readouterr().err
    assert run(tmp_path, wordtok, [conv()], extra=["--image-token", "<img>",
                                                   "--image-tokens", "2"]) == 1
    err = capsys.readouterr().err
    assert "record 0 (id 'c1'): has an image but the tokenizer" in err
    assert "no '<img>' token; give --image-token-id" in err
    assert run(tmp_path, wordtok, [conv()], extra=["--image-token-id", "99",
                                                   "--image-tokens", "2"]) == 1
    assert "--image-token-id 99 is outside the tokenizer's vocabulary" in capsys.readouterr().err
    assert run(tmp_path, wordtok, [conv()]) == 1
    assert "give --image-tokens N" in capsys.readouterr().err


def test_other_errors(tmp_path, wordtok, capsys):
    assert run(tmp_path, wordtok, text="a cat") == 1
    assert "corpus.txt: text files need --chunk-len" in capsys.readouterr().err
    assert run(tmp_path, wordtok, text="a cat", extra=["--chunk-len", "8", "--max-len", "4"]) == 1
    assert "--chunk-len 8 exceeds --max-len 4" in capsys.readouterr().err
    assert P.main(["--tokenizer", wordtok, "-o", str(tmp_path / "o.jsonl")]) == 1
    assert "nothing to do" in capsys.readouterr().err
    assert P.main(["--tokenizer", str(tmp_path / "none.json"), "-o", str(tmp_path / "o.jsonl"),
                   "--text", write(tmp_path, "t.txt", "a")]) == 1
    assert "none.json: tokenizer file not found" in capsys.readouterr().err
    bad = write(tmp_path, "bad.json", "{}")
    assert P.main(["--tokenizer", bad, "-o", str(tmp_path / "o.jsonl"),
                   "--text", write(tmp_path, "t.txt", "a")]) == 1
    assert "bad.json: not a tokenizers tokenizer.json" in capsys.readouterr().err


def test_processor_config_is_put_beside_the_records(tmp_path, wordtok, image, capsys):
    """--processor-config (a file or a model directory) lands beside the
    output as preprocessor_config.json, where the trainer looks first."""
    model = tmp_path / "model"
    model.mkdir()
    cfg = {"size": {"height": 28, "width": 28}, "image_mean": [0.5] * 3,
           "image_std": [0.5] * 3}
    (model / "preprocessor_config.json").write_text(json.dumps(cfg))
    for src in (str(model), str(model / "preprocessor_config.json")):
        assert run(tmp_path, wordtok, [conv()],
                   extra=["--image-tokens", "3", "--processor-config", src]) == 0
        assert json.loads((tmp_path / "out" / "preprocessor_config.json").read_text()) == cfg


@pytest.mark.parametrize("content,message", [
    (None, "No such file or directory"),
    ("{bad", "preprocessor_config.json:1: Expecting property name"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_processor_config(tmp_path, wordtok, image, capsys, content, message):
    path = tmp_path / "preprocessor_config.json"
    if content is not None:
        path.write_text(content)
    assert run(tmp_path, wordtok, [conv()],
               extra=["--image-tokens", "3", "--processor-config", str(path)]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "records.jsonl").exists()
