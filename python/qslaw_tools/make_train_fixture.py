"""Writes a tiny training set for the tiny LLaVA fixtures (vocabulary 48,
image token 31, 4 image tokens, sequence 24): PNG images and tokenised
JSON-lines records (multimodal: system + <image>x4 + question + answer, with
only answer tokens in the labels; text: every token counts).

    python -m qslaw_tools.make_train_fixture test/fixtures/train
"""
import json
import os
import struct
import sys
import zlib

import numpy as np

IMAGE_TOKEN, N_IMG = 31, 4


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main(out):
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    rng = np.random.default_rng(0)
    recs = []
    for i in range(6):
        img = rng.integers(0, 256, (32, 40, 3))
        write_png(os.path.join(out, "images", f"img{i}.png"), img)
        system, question = [1, 5, 6], [7 + i, 8, 9]
        answer = [20 + i, 21, 2]
        ids = system + [IMAGE_TOKEN] * N_IMG + question + answer
        labels = [-100] * (len(ids) - len(answer)) + answer
        recs.append({"id": f"mm{i}", "image": f"images/img{i}.png",
                     "input_ids": ids, "labels": labels})
    for i in range(6):
        ids = [int(x) for x in rng.integers(3, 30, 16 + i)]
        recs.append({"id": f"text{i}", "input_ids": ids, "labels": ids})
    with open(os.path.join(out, "records.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
