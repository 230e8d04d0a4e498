"""Shared pieces of the digits reproduction: the model geometry, the image
pipeline (the same as the C++ trainer's, lib/Train/Data.cpp), PNG decoding
and reading trainer records into padded arrays."""
import json
import os
import struct
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATA_DIR = os.path.join(ROOT, "data", "repro")
MODEL_NAME = "tiny_llava_digits"

# Geometry shared by the data builder, the model and the evaluator.
IMAGE_SIZE = 32          # PNG side = vision tower input side (no resize in the pipeline)
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2   # "default" strategy drops CLS: 16
SEQ_LEN = 64             # the exported graph's sequence length (batch 1)
CHUNK_LEN = SEQ_LEN      # text chunk length in tokens
SPECIALS = ["<pad>", "<s>", "</s>", "<image>", "<unk>"]
ROLE_TOKENS = ["USER:", "ASSISTANT:"]
VOCAB_SIZE = 128
PAD_ID, BOS_ID, EOS_ID, IMAGE_TOKEN_ID = 0, 1, 2, 3
SYSTEM = ""              # no system prompt: records start "<s>USER: <image>\n..."

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
QUESTIONS = ["What digit is in the image?", "Which digit is this?",
             "What number is shown?", "Name the digit."]


def read_png(path):
    """8-bit grey/grey-alpha/RGB/RGBA non-interlaced PNG -> uint8 [H, W, 3]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, "
                         f"interlace {interlace})")
    raw = zlib.decompress(idat)
    stride = w * channels
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if ft == 0:
            cur = line
        elif ft == 2:
            cur = (line + prev) & 0xFF
        else:
            cur = np.zeros(stride, np.int32)
            for x in range(stride):
                a = cur[x - channels] if x >= channels else 0
                b = prev[x]
                c = prev[x - channels] if x >= channels else 0
                if ft == 1:
                    p = a
                elif ft == 3:
                    p = (a + b) // 2
                elif ft == 4:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise ValueError(f"{path}: bad PNG filter type {ft}")
                cur[x] = (line[x] + p) & 0xFF
        out[y] = cur
        prev = cur
    px = out.reshape(h, w, channels)
    if channels in (1, 2):
        px = np.repeat(px[..., :1], 3, axis=2)
    return np.ascontiguousarray(px[..., :3])


def preprocess(rgb, size=IMAGE_SIZE):
    """The trainer's pipeline: shortest side to `size` (bilinear, pixel
    centres), centre crop, x/255, CLIP mean/std. -> float32 [3, size, size]."""
    h, w, _ = rgb.shape
    scale = size / min(w, h)
    rw, rh = max(size, int(round(w * scale))), max(size, int(round(h * scale)))
    x0, y0 = (rw - size) // 2, (rh - size) // 2
    xs = np.clip((np.arange(size) + x0 + 0.5) / scale - 0.5, 0, w - 1)
    ys = np.clip((np.arange(size) + y0 + 0.5) / scale - 0.5, 0, h - 1)
    ix, iy = xs.astype(int), ys.astype(int)
    jx, jy = np.minimum(ix + 1, w - 1), np.minimum(iy + 1, h - 1)
    fx, fy = (xs - ix)[None, :, None], (ys - iy)[:, None, None]
    v = rgb.astype(np.float64)
    top = (1 - fx) * v[iy][:, ix] + fx * v[iy][:, jx]
    bot = (1 - fx) * v[jy][:, ix] + fx * v[jy][:, jx]
    img = (1 - fy) * top + fy * bot
    img = ((img / 255.0 - CLIP_MEAN) / CLIP_STD).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def load_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def padded(rec, seq=SEQ_LEN):
    """(input_ids, labels, attention_mask) int64 [seq], right-padded as the
    trainer pads (pad id, label -100, mask 0)."""
    n = len(rec["input_ids"])
    if n > seq:
        raise ValueError(f"record {rec['id']!r} has {n} tokens > {seq}")
    ids = np.full(seq, PAD_ID, np.int64)
    lab = np.full(seq, -100, np.int64)
    mask = np.zeros(seq, np.int64)
    ids[:n], lab[:n], mask[:n] = rec["input_ids"], rec["labels"], 1
    return ids, lab, mask


def record_image(rec, records_path):
    return preprocess(read_png(os.path.join(os.path.dirname(os.path.abspath(records_path)),
                                            rec["image"])))
