import os
import sys

import numpy as np

d = sys.argv[1]
np.save(os.path.join(d, "x.npy"), np.zeros((3, 64), np.float32))
np.save(os.path.join(d, "x_bad_shape.npy"), np.zeros((3, 63), np.float32))
np.save(os.path.join(d, "q.npy"), np.zeros((8, 64), np.uint8))
np.save(os.path.join(d, "q_float.npy"), np.zeros((8, 64), np.float32))
q = np.zeros((8, 64), np.int32)
q[0, 5] = 16
np.save(os.path.join(d, "q_range.npy"), q)
np.save(os.path.join(d, "s.npy"), np.ones((8, 2), np.float32))
open(os.path.join(d, "garbage.npy"), "wb").write(b"this is not an array")
raw = open(os.path.join(d, "x.npy"), "rb").read()
open(os.path.join(d, "truncated.npy"), "wb").write(raw[:-100])
# Token ids the tiny model's vocabulary (48) cannot index.
ids = np.zeros((1, 24), np.int64)
ids[0, 7] = 48
np.save(os.path.join(d, "ids_past_vocab.npy"), ids)
ids[0, 7] = -49
np.save(os.path.join(d, "ids_below_vocab.npy"), ids)
ids[0, 7] = -48
np.save(os.path.join(d, "ids_negative_ok.npy"), ids)
