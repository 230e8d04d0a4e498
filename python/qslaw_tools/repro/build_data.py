"""Builds the digits reproduction's data (docs/Data.md):

- images/digit_NNNN.png: scikit-learn's 1797 handwritten digits (8x8, 17
  grey levels), dark ink on white, upscaled 4x (nearest) to 32x32 RGB;
- vqa_train.json / vqa_heldout.json: LLaVA conversation JSON, one question
  ("What digit is in the image?" and three other phrasings) and the digit's
  English name as the answer; a fixed 20 % held out (seed 0);
- text_train.txt / text_heldout.txt: the licence-text corpus (corpus.txt,
  copied from /usr/share/common-licenses by --refresh-corpus), the last
  ~15 % of every document held out;
- the trainer records, tokenised by qslaw_tools.prepare_data with
  tokenizer.json: train_mm.jsonl, train_text.jsonl, train.jsonl (both, the
  trainer's --data), heldout_mm.jsonl, heldout_text.jsonl; manifest.json.

    python -m qslaw_tools.repro.build_data [OUT]       # default data/repro

corpus.txt and tokenizer.json are inputs (committed); --refresh-corpus and
--retrain-tokenizer rebuild them. Everything else is regenerated
deterministically in a few seconds.
"""
import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

from qslaw_tools.make_train_fixture import write_png
from qslaw_tools.prepare_data import DataError, Preparer, write_jsonl
from qslaw_tools.repro import common as C

LICENSE_DIR = "/usr/share/common-licenses"
LICENSES = ["Apache-2.0", "GPL-3", "LGPL-2.1", "MPL-2.0", "Artistic", "BSD"]
DOC_SEP = "\n\n\n"          # documents are separated by two blank lines
HELDOUT_TEXT = 0.15
HELDOUT_VQA = 0.2
UPSCALE = C.IMAGE_SIZE // 8


def clean_license(text):
    """Strip indentation and runs of spaces, tabs and form feeds; collapse
    blank-line runs to one blank line."""
    text = text.replace("\t", " ").replace("\x0c", "")
    out, blank = [], False
    for line in text.split("\n"):
        line = re.sub(" +", " ", line.strip())
        if not line:
            if out and not blank:
                out.append("")
            blank = True
        else:
            out.append(line)
            blank = False
    return "\n".join(out).strip() + "\n"


def refresh_corpus(path, src=LICENSE_DIR):
    docs = [clean_license(open(os.path.join(src, n), encoding="utf-8").read())
            for n in LICENSES]
    text = "\n\n".join(docs)
    assert DOC_SEP * 2 not in text
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text


def split_corpus(text, heldout=HELDOUT_TEXT):
    """(train, heldout): each document's tail from the first paragraph
    boundary past (1 - heldout) of its characters is held out."""
    train, held = [], []
    for doc in text.split(DOC_SEP):
        doc = doc.strip("\n") + "\n"
        at = int(len(doc) * (1 - heldout))
        cut = doc.find("\n\n", at)
        cut = doc.find("\n", at) if cut < 0 else cut
        train.append(doc[:cut].strip("\n") + "\n")
        held.append(doc[cut:].strip("\n") + "\n")
    return "\n".join(train), "\n".join(held)


def digit_png(img8):
    """8x8 values 0..16 (ink) -> uint8 RGB [32, 32, 3], dark ink on white."""
    g = np.round(255.0 - img8 * (255.0 / 16.0)).astype(np.uint8)
    g = np.kron(g, np.ones((UPSCALE, UPSCALE), np.uint8))
    return np.repeat(g[:, :, None], 3, axis=2)


def conversation(i, digit, q):
    return {"id": f"digit_{i:04d}", "image": f"images/digit_{i:04d}.png",
            "conversations": [{"from": "human", "value": "<image>\n" + C.QUESTIONS[q]},
                              {"from": "gpt", "value": C.DIGIT_WORDS[digit]}]}


def build_vqa(out, seed=0, heldout=HELDOUT_VQA):
    from sklearn.datasets import load_digits
    d = load_digits()
    n = len(d.target)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    qs = rng.integers(0, len(C.QUESTIONS), n)
    held = set(perm[:int(round(n * heldout))].tolist())
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    train, test = [], []
    for i in range(n):
        write_png(os.path.join(out, "images", f"digit_{i:04d}.png"), digit_png(d.images[i]))
        (test if i in held else train).append(conversation(i, int(d.target[i]), int(qs[i])))
    return train, test


def train_tokenizer(path, text_train, alphabet):
    """BPE over characters, vocabulary 128 = 5 specials + 2 role tokens
    (USER:, ASSISTANT:) + alphabet (every character of the whole corpus,
    newline included) + merges; spaces as U+2581 (Metaspace); the merges are
    learnt from the training text's paragraphs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=C.VOCAB_SIZE - len(C.ROLE_TOKENS),
                                  special_tokens=C.SPECIALS,
                                  initial_alphabet=sorted(set(alphabet) - {" "}),
                                  show_progress=False)
    # The questions and answers, a few times each, so that their words are
    # not all single characters.
    qa = [f"{q} {w}" for q in C.QUESTIONS for w in C.DIGIT_WORDS] * 3
    tok.train_from_iterator(text_train.split("\n\n") + qa, trainer)
    tok.add_tokens(C.ROLE_TOKENS)
    assert tok.get_vocab_size() == C.VOCAB_SIZE, tok.get_vocab_size()
    for i, name in enumerate(C.SPECIALS[:4]):
        assert tok.token_to_id(name) == i
    tok.save(path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build(out, corpus=None, tokenizer=None, seed=0, refresh=False, retrain=False):
    corpus = corpus or os.path.join(C.DATA_DIR, "corpus.txt")
    tokenizer = tokenizer or os.path.join(C.DATA_DIR, "tokenizer.json")
    os.makedirs(out, exist_ok=True)
    if refresh:
        refresh_corpus(corpus)
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    text_train, text_held = split_corpus(text)
    for name, t in [("text_train.txt", text_train), ("text_heldout.txt", text_held)]:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(t)
    if retrain or not os.path.exists(tokenizer):
        train_tokenizer(tokenizer, text_train, text)

    train, test = build_vqa(out, seed)
    for name, convs in [("vqa_train.json", train), ("vqa_heldout.json", test)]:
        with open(os.path.join(out, name), "w") as f:
            json.dump(convs, f, indent=1)

    prep = Preparer(tokenizer, system=C.SYSTEM, bos="<s>", eos="</s>",
                    image_token_id=C.IMAGE_TOKEN_ID, image_tokens=C.IMAGE_TOKENS,
                    max_len=C.SEQ_LEN)
    files = {}
    for split in ("train", "heldout"):
        o = os.path.join(out, f"{split}_mm.jsonl")
        files[f"{split}_mm"] = prep.conversation_file(os.path.join(out, f"vqa_{split}.json"),
                                                      out_dir=out)
        files[f"{split}_text"] = prep.text_chunks(os.path.join(out, f"text_{split}.txt"),
                                                  C.CHUNK_LEN)
    if prep.skipped_long:
        raise DataError(f"{prep.skipped_long} conversation(s) longer than {C.SEQ_LEN} tokens")
    files["train"] = files["train_mm"] + files["train_text"]
    manifest = {"seed": seed, "seq_len": C.SEQ_LEN, "image_tokens": C.IMAGE_TOKENS,
                "image_token_id": C.IMAGE_TOKEN_ID, "chunk_len": C.CHUNK_LEN,
                "tokenizer": os.path.relpath(tokenizer, C.ROOT),
                "tokenizer_sha256": sha256(tokenizer),
                "corpus_sha256": sha256(corpus), "files": {}}
    for name, recs in files.items():
        o = os.path.join(out, f"{name}.jsonl")
        write_jsonl(o, recs)
        manifest["files"][f"{name}.jsonl"] = {
            "records": len(recs), "tokens": sum(len(r["input_ids"]) for r in recs),
            "max_len": max(len(r["input_ids"]) for r in recs), "sha256": sha256(o)}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qslaw_tools.repro.build_data",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", default=C.DATA_DIR)
    p.add_argument("--corpus", default=None, help="corpus file (default data/repro/corpus.txt)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json (default data/repro/tokenizer.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refresh-corpus", action="store_true",
                   help=f"rewrite --corpus from {LICENSE_DIR}")
    p.add_argument("--retrain-tokenizer", action="store_true",
                   help="retrain --tokenizer on the training text")
    a = p.parse_args(argv)
    try:
        m = build(a.out, a.corpus, a.tokenizer, a.seed, a.refresh_corpus, a.retrain_tokenizer)
    except DataError as e:
        print(f"build_data: error: {e}", file=sys.stderr)
        return 1
    for name, f in m["files"].items():
        print(f"{os.path.join(a.out, name)}: {f['records']} records, {f['tokens']} tokens, "
              f"longest {f['max_len']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
