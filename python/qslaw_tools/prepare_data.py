"""Tokenisation preparation for the qslaw trainer: LLaVA conversation JSON and
plain text corpora -> the trainer's JSON-lines records
({"id", "input_ids", "labels", "image"?}, docs/Training.md).

    python -m qslaw_tools.prepare_data --tokenizer tokenizer.json \\
        --conversations llava.json --image-tokens 576 \\
        --text corpus.txt --chunk-len 1024 -o records.jsonl

Conversations (template v1, one record per conversation):

    <s>{system} USER: {human 1} ASSISTANT: {gpt 1}</s> USER: {human 2} ASSISTANT: {gpt 2}</s>...

The first human turn holds the `<image>` placeholder when the conversation
has an "image"; it becomes N copies of the image token id. Labels are -100
everywhere except on the assistant answers and their end tokens: a token
counts when its character span overlaps an answer (so a token that merges the
separator space with the answer's first word counts). Text between special
tokens (<s>, the image tokens, </s>) is tokenised in one piece with the
tokenizer's own pre-tokenisation, without its post-processor.

Text files are tokenised whole and cut into consecutive chunks of L tokens in
which every token counts (labels = input_ids); a last chunk shorter than L is
dropped unless --keep-last-chunk.

Image paths are written relative to the output file's directory; nothing is
copied. Malformed input is an error naming the file, the record and the
field, exit status 1.
"""
import argparse
import json
import os
import sys

LLAVA_V1_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the human's "
                   "questions.")
IMAGE_PLACEHOLDER = "<image>"
IGNORE = -100


class DataError(Exception):
    """Malformed input; the message names the file, record and field."""


class Preparer:
    """Holds the tokenizer and the template options; encodes conversations
    and text files into trainer records (dicts)."""

    def __init__(self, tokenizer_path, system=LLAVA_V1_SYSTEM, bos="<s>", eos="</s>",
                 image_token="<image>", image_token_id=None, image_tokens=None,
                 max_len=None, truncate=False):
        from tokenizers import Tokenizer
        if not os.path.isfile(tokenizer_path):
            raise DataError(f"{tokenizer_path}: tokenizer file not found")
        try:
            self.tok = Tokenizer.from_file(tokenizer_path)
        except Exception as e:  # tokenizers raises its own Exception type
            raise DataError(f"{tokenizer_path}: not a tokenizers tokenizer.json: {e}") from e
        self.tokenizer_path = tokenizer_path
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        self.system = system
        self.bos_id = self._special(bos, "--bos") if bos else None
        self.eos_id = self._special(eos, "--eos")
        self.image_token = image_token
        self.image_token_id = image_token_id
        if image_token_id is not None and not 0 <= image_token_id < self.vocab_size:
            raise DataError(f"--image-token-id {image_token_id} is outside the tokenizer's "
                            f"vocabulary (size {self.vocab_size})")
        if image_tokens is not None and image_tokens < 1:
            raise DataError(f"--image-tokens must be positive, got {image_tokens}")
        self.image_tokens = image_tokens
        if max_len is not None and max_len < 2:
            raise DataError(f"--max-len must be at least 2, got {max_len}")
        self.max_len = max_len
        self.truncate = truncate
        self.skipped_long = 0
        self.truncated = 0

    def _special(self, name, option):
        i = self.tok.token_to_id(name)
        if i is None:
            raise DataError(f"{self.tokenizer_path}: the tokenizer has no token {name!r} "
                            f"(needed by {option})")
        return i

    def _image_id(self, where):
        if self.image_token_id is None:
            i = self.tok.token_to_id(self.image_token)
            if i is None:
                raise DataError(f"{where}: has an image but the tokenizer "
                                f"{self.tokenizer_path} has no {self.image_token!r} token; "
                                "give --image-token-id")
            self.image_token_id = i
        if self.image_tokens is None:
            raise DataError(f"{where}: has an image; give --image-tokens N (image features "
                            "per image, e.g. (image_size/patch_size)^2)")
        return self.image_token_id

    # -- conversations -----------------------------------------------------

    def _pieces(self, conv, where):
        """Template v1 as a list of ("text", str, answer_spans) / ("image",) /
        ("bos",) / ("eos",) pieces, after validating the record."""
        if not isinstance(conv, dict):
            raise DataError(f"{where}: a record must be a JSON object")
        if "conversations" not in conv:
            raise DataError(f"{where}: missing field \"conversations\"")
        turns = conv["conversations"]
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{where}: \"conversations\" must be a non-empty array")
        has_image = "image" in conv
        if has_image and (not isinstance(conv["image"], str) or not conv["image"]):
            raise DataError(f"{where}: \"image\" must be a non-empty string (a path)")
        for t, turn in enumerate(turns):
            f = f"{where}: conversations[{t}]"
            if not isinstance(turn, dict):
                raise DataError(f"{f}: a turn must be an object with \"from\" and \"value\"")
            for key in ("from", "value"):
                if key not in turn:
                    raise DataError(f"{f}: missing field \"{key}\"")
            if not isinstance(turn["value"], str):
                raise DataError(f"{f}.value: must be a string")
            if turn["from"] not in ("human", "gpt"):
                raise DataError(f"{f}.from: unknown speaker {turn['from']!r} "
                                "(expected \"human\" or \"gpt\")")
            expected = "human" if t % 2 == 0 else "gpt"
            if turn["from"] != expected:
                if t == 0:
                    raise DataError(f"{f}.from: the first turn must be \"human\", "
                                    f"got {turn['from']!r}")
                raise DataError(f"{f}.from: turns must alternate human/gpt, expected "
                                f"{expected!r}, got {turn['from']!r}")
            n = turn["value"].count(IMAGE_PLACEHOLDER)
            if n and (t > 0 or not has_image):
                why = ("only the first human turn may hold it" if has_image
                       else "the record has no \"image\"")
                raise DataError(f"{f}.value: {IMAGE_PLACEHOLDER} placeholder but {why}")
            if t == 0 and has_image and n != 1:
                raise DataError(f"{f}.value: the record has an \"image\", so the first human "
                                f"turn must hold exactly one {IMAGE_PLACEHOLDER} "
                                f"placeholder (found {n})")
        if len(turns) % 2:
            raise DataError(f"{where}: conversations[{len(turns) - 1}]: the conversation ends "
                            "with a human turn (no assistant answer)")

        pieces = [("bos",)] if self.bos_id is not None else []
        text, spans = "", []

        def flush():
            nonlocal text, spans
            if text:
                pieces.append(("text", text, spans))
            text, spans = "", []

        prefix = f"{self.system} USER: " if self.system else "USER: "
        for t in range(0, len(turns), 2):
            q, a = turns[t]["value"], turns[t + 1]["value"]
            text += prefix if t == 0 else " USER: "
            if IMAGE_PLACEHOLDER in q:
                before, after = q.split(IMAGE_PLACEHOLDER)
                text += before
                flush()
                pieces.append(("image",))
                q = after
            text += q + " ASSISTANT: "
            spans.append((len(text), len(text) + len(a)))
            text += a
            flush()
            pieces.append(("eos",))
        return pieces, has_image

    def conversation(self, conv, where, image_dir=None, out_dir=None, default_id=None):
        """One conversation -> a record, or None when skipped for length."""
        pieces, has_image = self._pieces(conv, where)
        ids, labels = [], []
        for p in pieces:
            if p[0] == "bos":
                ids.append(self.bos_id)
                labels.append(IGNORE)
            elif p[0] == "eos":
                ids.append(self.eos_id)
                labels.append(self.eos_id)
            elif p[0] == "image":
                img = self._image_id(where)
                ids += [img] * self.image_tokens
                labels += [IGNORE] * self.image_tokens
            else:
                _, s, spans = p
                enc = self.tok.encode(s, add_special_tokens=False)
                for i, (a, b) in zip(enc.ids, enc.offsets):
                    ids.append(i)
                    inside = any(a < e and b > st for st, e in spans)
                    labels.append(i if inside else IGNORE)
        rid = conv.get("id", default_id if default_id is not None else where)
        rec = {"id": str(rid), "input_ids": ids, "labels": labels}
        if has_image:
            path = conv["image"]
            full = path if os.path.isabs(path) else os.path.join(image_dir or ".", path)
            if not os.path.isfile(full):
                raise DataError(f"{where}: image: file not found: {full}")
            rec["image"] = os.path.relpath(os.path.abspath(full),
                                           os.path.abspath(out_dir or "."))
        return self._fit(rec)

    def _fit(self, rec):
        if self.max_len is None or len(rec["input_ids"]) <= self.max_len:
            return rec
        if not self.truncate:
            self.skipped_long += 1
            return None
        ids, labels = rec["input_ids"][:self.max_len], rec["labels"][:self.max_len]
        # A cut through the image tokens would leave fewer image tokens than
        # image features; a record without any counted token trains nothing.
        cut_image = "image" in rec and ids.count(self.image_token_id) != self.image_tokens
        if cut_image or all(l == IGNORE for l in labels):
            self.skipped_long += 1
            return None
        self.truncated += 1
        return dict(rec, input_ids=ids, labels=labels)

    def conversation_file(self, path, image_dir=None, out_dir=None):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: malformed JSON: {e}") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON array of conversation records")
        image_dir = image_dir if image_dir is not None else os.path.dirname(path)
        out = []
        for k, conv in enumerate(data):
            rid = conv.get("id") if isinstance(conv, dict) else None
            where = f"{path}: record {k}" + (f" (id {rid!r})" if rid is not None else "")
            rec = self.conversation(conv, where, image_dir, out_dir,
                                    default_id=f"{os.path.basename(path)}:{k}")
            if rec is not None:
                out.append(rec)
        return out

    # -- text corpora ------------------------------------------------------

    def text_chunks(self, path, chunk_len, keep_last=False):
        if chunk_len is None or chunk_len < 2:
            raise DataError(f"{path}: text files need --chunk-len L >= 2")
        if self.max_len is not None and chunk_len > self.max_len:
            raise DataError(f"--chunk-len {chunk_len} exceeds --max-len {self.max_len}")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text: {e}") from None
        ids = self.tok.encode(text, add_special_tokens=False).ids
        name = os.path.basename(path)
        out = []
        for k, s in enumerate(range(0, len(ids), chunk_len)):
            c = ids[s:s + chunk_len]
            if len(c) < chunk_len and not keep_last:
                break
            if len(c) < 2:
                break
            out.append({"id": f"{name}:{k}", "input_ids": c, "labels": list(c)})
        return out


def write_jsonl(path, records):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m qslaw_tools.prepare_data",
        description="Tokenise LLaVA conversation JSON and text corpora into qslaw trainer "
                    "records (JSON lines).")
    p.add_argument("--tokenizer", required=True, help="HF tokenizers tokenizer.json")
    p.add_argument("--conversations", action="append", default=[], metavar="FILE",
                   help="LLaVA conversation JSON (array of records); repeatable")
    p.add_argument("--text", action="append", default=[], metavar="FILE",
                   help="plain text corpus cut into --chunk-len token chunks; repeatable")
    p.add_argument("-o", "--output", required=True, help="output JSON-lines file")
    p.add_argument("--image-folder", default=None,
                   help="directory the \"image\" paths are relative to (default: the "
                        "conversation file's directory)")
    p.add_argument("--image-token", default=IMAGE_PLACEHOLDER,
                   help="name of the image token in the tokenizer (default %(default)s)")
    p.add_argument("--image-token-id", type=int, default=None,
                   help="id of the image token (default: the id of --image-token)")
    p.add_argument("--image-tokens", type=int, default=None, metavar="N",
                   help="image tokens per image (the model's image feature count)")
    p.add_argument("--system", default=LLAVA_V1_SYSTEM,
                   help="system prompt (default: LLaVA v1's); '' for none")
    p.add_argument("--bos", default="<s>", help="begin token name; '' for none")
    p.add_argument("--eos", default="</s>", help="end token name (ends every answer)")
    p.add_argument("--max-len", type=int, default=None,
                   help="longest record (the compiled sequence length)")
    p.add_argument("--truncate", action="store_true",
                   help="truncate records longer than --max-len instead of skipping them")
    p.add_argument("--chunk-len", type=int, default=None, metavar="L",
                   help="tokens per text chunk")
    p.add_argument("--keep-last-chunk", action="store_true",
                   help="keep each text file's final chunk shorter than L")
    p.add_argument("--processor-config", default=None, metavar="FILE|DIR",
                   help="the vision tower's Hugging Face preprocessor_config.json "
                        "(or a model directory holding one): copied beside the "
                        "output, where the trainer finds it")
    return p


def read_processor_config(path):
    """The preprocessor_config.json at `path` (a file or a directory); the
    trainer checks its values (lib/Train/ImageProcessor.cpp)."""
    if os.path.isdir(path):
        path = os.path.join(path, "preprocessor_config.json")
    try:
        with open(path) as f:
            text = f.read()
        cfg = json.loads(text)
    except OSError as e:
        raise DataError(f"--processor-config: {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise DataError(f"--processor-config: {path}:{e.lineno}: {e.msg}")
    if not isinstance(cfg, dict):
        raise DataError(f"--processor-config: {path}: expected a JSON object")
    return text


def main(argv=None):
    a = build_parser().parse_args(argv)
    if not a.conversations and not a.text:
        print("prepare_data: error: nothing to do: give --conversations and/or --text",
              file=sys.stderr)
        return 1
    try:
        prep = Preparer(a.tokenizer, system=a.system, bos=a.bos, eos=a.eos,
                        image_token=a.image_token, image_token_id=a.image_token_id,
                        image_tokens=a.image_tokens, max_len=a.max_len, truncate=a.truncate)
        out_dir = os.path.dirname(os.path.abspath(a.output))
        recs = []
        for path in a.conversations:
            recs += prep.conversation_file(path, a.image_folder, out_dir)
        for path in a.text:
            recs += prep.text_chunks(path, a.chunk_len, a.keep_last_chunk)
        processor = read_processor_config(a.processor_config) if a.processor_config else None
    except DataError as e:
        print(f"prepare_data: error: {e}", file=sys.stderr)
        return 1
    write_jsonl(a.output, recs)
    if processor is not None:
        dst = os.path.join(out_dir, "preprocessor_config.json")
        tmp = dst + ".tmp"
        with open(tmp, "w") as f:
            f.write(processor)
        os.replace(tmp, dst)
    mm = sum("image" in r for r in recs)
    msg = (f"prepare_data: wrote {len(recs)} record(s) to {a.output}: {mm} multimodal, "
           f"{len(recs) - mm} text")
    if prep.skipped_long:
        msg += f"; skipped {prep.skipped_long} longer than --max-len {a.max_len}"
    if prep.truncated:
        msg += f"; truncated {prep.truncated} to --max-len {a.max_len}"
    print(msg, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
