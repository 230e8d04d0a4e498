"""Held-out evaluation of a digits-reproduction ONNX model with onnxruntime
(full precision, or qslaw's quantized exports with com.microsoft
MatMulNBits or DequantizeLinear nodes).

    python -m qslaw_tools.repro.evaluate MODEL.onnx [--data data/repro] [--limit N]

Prints one JSON object:

- vqa_accuracy: greedy-decoding exact match of the answer, computed in one
  teacher-forced pass: an example is right when the argmax over the whole
  vocabulary equals the reference token at every answer position, end token
  included (greedy decoding then reproduces the answer and stops), so "seven"
  for "seven" and nothing else;
- vqa_token_accuracy: the same argmax test per answer token;
- vqa_answer_nll: mean next-token cross-entropy over the answer tokens;
- text_ppl: exp of the mean next-token cross-entropy over every predicted
  token of the held-out text chunks (the chunks' first tokens are not
  predicted); text_nll its log; uniform_ppl = vocabulary size for scale.

The records are heldout_mm.jsonl and heldout_text.jsonl (build_data); the
sequence length and image size are read from the model's inputs, batch 1.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

from qslaw_tools.repro import common as C


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def score(logits, ids, labels):
    """Per-record next-token statistics from [S, V] logits and the record's
    ids/labels (unpadded). -> (nll_sum, n, n_correct)"""
    n = len(ids)
    lp = log_softmax(logits[:n - 1].astype(np.float64))
    tgt = np.asarray(labels[1:])
    keep = tgt != -100
    pos = np.nonzero(keep)[0]
    nll = -lp[pos, tgt[pos]].sum()
    correct = int((lp[pos].argmax(-1) == tgt[pos]).sum())
    return float(nll), len(pos), correct


class OrtModel:
    def __init__(self, path, threads=1):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # Otherwise onnxruntime fuses block-wise DequantizeLinear + MatMul
        # (our 3- and 2-bit exports) into MatMulNBits with int8-quantised
        # activations (accuracy level 4): evaluate the model as exported.
        so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        shapes = {i.name: i.shape for i in self.sess.get_inputs()}
        self.seq = int(shapes["input_ids"][1])
        self.pix_shape = [int(d) for d in shapes["pixel_values"]]
        self.vocab = int(self.sess.get_outputs()[0].shape[-1])

    def __call__(self, ids, mask, pix):
        return self.sess.run(None, {"input_ids": ids[None], "attention_mask": mask[None],
                                    "pixel_values": pix[None]})[0][0]


def evaluate(logits_fn, data_dir=C.DATA_DIR, seq=C.SEQ_LEN, limit=None):
    """logits_fn(ids [S] int64, mask [S] int64, pix [3, H, W] f32 or None)
    -> logits [S, V]."""
    out = {}
    mm_path = os.path.join(data_dir, "heldout_mm.jsonl")
    recs = C.load_records(mm_path)[:limit]
    nll = n = tok_ok = ex_ok = 0
    for r in recs:
        ids, _, mask = C.padded(r, seq)
        logits = logits_fn(ids, mask, C.record_image(r, mm_path))
        s, k, c = score(logits, r["input_ids"], r["labels"])
        nll, n, tok_ok, ex_ok = nll + s, n + k, tok_ok + c, ex_ok + (c == k)
    out.update(vqa_examples=len(recs), vqa_accuracy=ex_ok / len(recs),
               vqa_token_accuracy=tok_ok / n, vqa_answer_nll=nll / n)
    recs = C.load_records(os.path.join(data_dir, "heldout_text.jsonl"))[:limit]
    nll = n = 0
    for r in recs:
        ids, _, mask = C.padded(r, seq)
        s, k, _ = score(logits_fn(ids, mask, None), r["input_ids"], r["labels"])
        nll, n = nll + s, n + k
    out.update(text_chunks=len(recs), text_tokens_predicted=n, text_nll=nll / n,
               text_ppl=math.exp(nll / n))
    return out


def evaluate_onnx(path, data_dir=C.DATA_DIR, limit=None, threads=1):
    m = OrtModel(path, threads)
    zeros = np.zeros(m.pix_shape[1:], np.float32)

    def fn(ids, mask, pix):
        return m(ids, mask, zeros if pix is None else pix)
    r = evaluate(fn, data_dir, m.seq, limit)
    r["uniform_ppl"] = m.vocab
    return r


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qslaw_tools.repro.evaluate",
                                description="Held-out VQA accuracy and text perplexity of a "
                                            "digits-reproduction ONNX model (onnxruntime).")
    p.add_argument("model")
    p.add_argument("--data", default=C.DATA_DIR, help="directory of heldout_*.jsonl")
    p.add_argument("--limit", type=int, default=None, help="first N records of each set")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    r = evaluate_onnx(a.model, a.data, a.limit, a.threads)
    r = {"model": a.model, **r}
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
