"""A small real-data reproduction of the QSLAW claim: the scikit-learn
handwritten digits as visual questions plus English licence texts as the
linguistic corpus, a tokenizer, and a tiny LLaVA trained from scratch in
full precision (docs/Data.md).

    python -m qslaw_tools.repro.build_data data/repro     # images, JSON, JSONL
    python -m qslaw_tools.repro.train_fp data/repro       # FP model -> ONNX
    python -m qslaw_tools.repro.evaluate data/repro/tiny_llava_digits.onnx
    python -m qslaw_tools.repro.reproduce                 # qslaw: RTN vs scale learning
"""
