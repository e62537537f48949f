"""Writes a CLIP tokenizer folder (vocab.json + merges.txt + configs) from OpenAI's BPE file.

`bpe_simple_vocab_16e6.txt.gz` is the file OpenAI's CLIP ships (MIT); it comes here from the
PyPI wheel `open-clip-torch`. The vocabulary is built as CLIP's `SimpleTokenizer` builds it:
256 byte symbols, the same with `</w>`, one token per merge, then the two special tokens.
`n_merges` < 48894 gives a truncated vocabulary for tiny test models.
"""
import gzip
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
FULL_MERGES = 49152 - 256 - 2  # as in CLIP's simple_tokenizer.py


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_tokenizer(folder, n_merges=FULL_MERGES, pad="<|endoftext|>"):
    os.makedirs(folder, exist_ok=True)
    lines = gzip.open(os.path.join(HERE, "bpe_simple_vocab_16e6.txt.gz")).read().decode("utf-8").split("\n")
    merges = [tuple(l.split()) for l in lines[1 : FULL_MERGES + 1]][:n_merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(" ".join(m) for m in merges) + "\n")
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad, "unk_token": "<|endoftext|>"}, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad, "unk_token": "<|endoftext|>", "do_lower_case": True}, f, indent=2)
    return len(vocab)
