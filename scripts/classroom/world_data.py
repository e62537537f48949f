"""Reads the datasets that `classroom-data` (crate `crates/classroom`) writes, and turns labels into classes.

A dataset folder holds:
  images.u8     raw uint8, N x 64 x 64 x 3 (HWC, RGB)
  labels.jsonl  one line per image: {"caption": str, "labels": {attribute: value or null, ...}}
  meta.json     the class vocabulary of every evaluator head ({head: [values]}, possibly nested under "heads")

Class names are strings: a string value is itself, null is "none", anything else is its JSON text
(true -> "true", 2 -> "2"). A head whose labels can be null gets a "none" class, so the evaluator can say
"there is no character here" (which is what a successful erasure looks like).
"""
import json
import os

import numpy as np

# Keys of meta.json that hold the head vocabularies, in the order they are looked for.
_NESTED_KEYS = ("heads", "vocab", "vocabularies", "classes", "attributes")


def class_name(value):
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def read_meta_vocab(meta):
    """{head: [class names]} from meta.json, whatever nesting the world uses."""
    for key in _NESTED_KEYS:
        if isinstance(meta.get(key), dict):
            meta = meta[key]
            break
    vocab = {}
    for head, values in meta.items():
        if isinstance(values, list) and values and all(not isinstance(v, (dict, list)) for v in values):
            vocab[head] = [class_name(v) for v in values]
        elif isinstance(values, dict) and isinstance(values.get("classes"), list):
            vocab[head] = [class_name(v) for v in values["classes"]]
    return vocab


class Split:
    """One or more dataset folders concatenated: `images` [N, 64, 64, 3] uint8, `captions`, `labels`."""

    def __init__(self, folders):
        if isinstance(folders, str):
            folders = [folders]
        images, self.captions, self.labels, self.meta = [], [], [], None
        for folder in folders:
            with open(os.path.join(folder, "meta.json")) as f:
                meta = json.load(f)
            if self.meta is None:
                self.meta = meta
            raw = np.fromfile(os.path.join(folder, "images.u8"), dtype=np.uint8)
            with open(os.path.join(folder, "labels.jsonl")) as f:
                rows = [json.loads(line) for line in f if line.strip()]
            # The image side follows from the byte count (N x S x S x 3); 64 in this world.
            size = int(round((raw.size / max(len(rows), 1) / 3) ** 0.5))
            if len(rows) == 0 or size * size * 3 * len(rows) != raw.size:
                raise ValueError(f"{folder}: images.u8 has {raw.size} bytes, which is not {len(rows)} RGB squares")
            raw = raw.reshape(-1, size, size, 3)
            images.append(raw)
            for row in rows:
                self.captions.append(row["caption"])
                self.labels.append(row.get("labels", {}))
        self.images = np.concatenate(images) if len(images) > 1 else images[0]
        self.folders = list(folders)

    def __len__(self):
        return len(self.captions)

    def truncate(self, n):
        self.images, self.captions, self.labels = self.images[:n], self.captions[:n], self.labels[:n]


def vocab_for(head, vocab):
    """meta.json's vocabulary for a label key: "shape" -> "shapes", "colour2"/"bg_colour" -> "colours",
    "bg" -> "backgrounds", "position2" -> "positions"; None if meta.json has none."""
    base = head.rstrip("0123456789")
    for key in (head, base, base + "s", base.split("_")[-1] + "s", {"bg": "backgrounds"}.get(base, "")):
        if key in vocab:
            return vocab[key]
    return None


def build_heads(meta, splits):
    """{head: [class names]} for every categorical label attribute: meta.json's vocabulary where it has
    one (in its order), else the sorted observed values; plus "none" where a label can be null, and any
    value meta.json did not list (with a warning)."""
    vocab = read_meta_vocab(meta)
    observed = {}
    for split in splits:
        for lab in split.labels:
            for k, v in lab.items():
                if isinstance(v, (dict, list)):
                    continue
                observed.setdefault(k, set()).add(class_name(v))
    heads = {}
    for head in observed:
        classes = vocab_for(head, vocab)
        classes = list(classes) if classes else sorted(c for c in observed[head] if c != "none")
        for name in sorted(observed[head]):
            if name not in classes:
                if name != "none":
                    print(f"warning: head {head!r}: value {name!r} is not in meta.json; added")
                classes.append(name)
        if len(classes) >= 2:
            heads[head] = classes
    return heads


# Two-object scenes are drawn as a pair at opposite positions, and labels name the objects in sampling
# order, which an image cannot show. The evaluator therefore learns a canonical order: "shape"/"colour"/
# "position" is the object on the left (or top), "shape2"/"colour2"/"position2" the one on the right
# (or bottom). Prompts are scored with the same convention (see train.adherence).
_FIRST = ("left", "top")
_PAIR = (("shape", "shape2"), ("colour", "colour2"), ("position", "position2"))


def canonical(lab):
    if lab.get("position2") in _FIRST and lab.get("position") not in _FIRST:
        lab = dict(lab)
        for a, b in _PAIR:
            lab[a], lab[b] = lab.get(b), lab.get(a)
    return lab


def encode_labels(split, heads):
    """[N, n_heads] int64 class indices (canonical two-object order); -100 (ignored by the loss) where an
    attribute is absent."""
    out = np.full((len(split), len(heads)), -100, dtype=np.int64)
    index = [(j, head, {c: i for i, c in enumerate(classes)}) for j, (head, classes) in enumerate(heads.items())]
    for i, lab in enumerate(split.labels):
        lab = canonical(lab)
        for j, head, idx in index:
            if head in lab:
                out[i, j] = idx.get(class_name(lab[head]), -100)
    return out
