"""Writes the CLIP tokenizer fixtures of crates/pipeline/tests/tokenizer_parity.rs.

1. tests/fixtures/tokenizer-clip/  the FULL CLIP vocabulary folder (vocab.json, merges.txt, configs),
   written by clip_bpe.write_tokenizer from OpenAI's bpe_simple_vocab_16e6.txt.gz (49408 tokens).
2. crates/pipeline/src/clip_bpe_merges.zlib  that folder's merges.txt, zlib-compressed (~210 kB):
   the data behind `ClipTokenizer::builtin()` (the vocabulary is rebuilt from the merges in Rust,
   as clip_bpe.py does).
3. tests/fixtures/reference/tokenizer.json  the ids transformers' `CLIPTokenizer.from_pretrained`
   produces with `padding="max_length", max_length=77, truncation=True` (what StableDiffusionPipeline
   calls), for every prompt below and every tokenizer variant (full vocabulary, both truncated tiny
   vocabularies, and folders whose special-token files look like the real SD 1.5 / SD 2.x / textual-
   inversion ones), plus a per-code-point table of the normalizer (NFC, \\s+ -> " ", lowercase) and of
   the pre-tokenizer regex classes (whitespace / letter / number / other), so the Rust side is checked
   on all of Unicode, not only on the prompts.

transformers >= 5 has only the `tokenizers`-backed CLIPTokenizer (models/clip/tokenization_clip.py):
no ftfy, no html.unescape, no strip; special tokens are matched in the text before BPE. The versions
used are recorded in the JSON.

Run from the repository root (needs transformers + tokenizers, see DESIGN.md):
    /var/cache/erasure-studio/venv/bin/python scripts/reference/ref_tokenizer.py
Deterministic: no randomness.
"""
import json
import os
import shutil
import sys
import tempfile
import zlib

import tokenizers
import transformers
from tokenizers import Regex, pre_tokenizers
from transformers import CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from clip_bpe import write_tokenizer  # noqa: E402

FULL = os.path.join(REPO, "tests", "fixtures", "tokenizer-clip")
BUILTIN = os.path.join(REPO, "crates", "pipeline", "src", "clip_bpe_merges.zlib")
OUT = os.path.join(REPO, "tests", "fixtures", "reference", "tokenizer.json")
CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

PROMPTS = [
    "a photo of a cat",
    "A Photo of a CAT, highly detailed, 4k, trending on ArtStation!",
    "",
    "   ",
    "it's a dog; we'll see. They're here, I'm sure, you've got it, he'd go, don't",
    "IT'S WE'LL THEY'RE YOU'VE I'M HE'D",
    "don't stop'n'roll 'quoted' rock'n'roll O'Neil's it'salright",
    "Café crème brûlée à la mode, naïve façade, Ångström",
    "Cafe\u0301 decomposed: e\u0301 a\u0300 o\u0308 A\u030a \u212b",
    "東京タワーの夜景、猫と犬",
    "一只可爱的熊猫在吃竹子",
    "🐱🐶 emoji party 🎉🔥👍🏽 👨\u200d👩\u200d👧",
    "multiple    spaces\tand\ttabs\nnew\n\nlines\r\n end",
    "&amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;html&#39;",
    "numbers 12345 3.14159 1,000,000 2nd 42nd 1990s",
    "punctuation!!! ??? ... --- ((nested)) [brackets] {braces} <angle> @user #hashtag $100 50% a+b=c",
    "<|startoftext|>hello<|endoftext|> world",
    "<|ENDOFTEXT|> upper special <|StartOfText|>",
    "Ελληνικά ΣΟΦΙΑ σοφία ς ΟΔΥΣΣΕΥΣ ΑΣ.",  # a final capital sigma lowercases to σ, not ς
    "İstanbul ẞtraße ǅemal",
    "Москва, Россия — привет мир",
    "مرحبا بالعالم שלום",
    "हिन्दी भाषा",
    "ﬁne ﬂower ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "Ⅻ ½ ² ³ ① ٣ ໓",
    "zero\u200bwidth\u00a0nbsp\u2003emspace\u3000ideographic\u0085nel",
    "trailing spaces and newline   \n",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a_b-c.d/e\\f|g~h`i^j",
    "x",
    "!",
    "hello! world!! wow!!!",
    "control\u0000chars\u0007and\u001fdel\u007f",
    "mixed123abc456 l33t sp34k",
    "a  <|endoftext|>  b <cat-toy> c <DOG> d",
    "a photo of a <Cat-Toy> and a <dog>",
    "cat " * 75,
    "cat " * 76,
    "😀" * 30,
    "a very detailed oil painting of a majestic lion standing on a rocky cliff at sunset, dramatic lighting, "
    "golden hour, volumetric clouds, by greg rutkowski and alphonse mucha, trending on artstation, octane render, "
    "8k, ultra realistic, sharp focus, intricate details, masterpiece, award winning photograph, cinematic composition",
    # Over 77 tokens for every vocabulary: the tail is cut, EOS stays last, `truncated` is set.
    "portrait of an elderly fisherman with a weathered face, deep wrinkles, grey beard, wearing a yellow raincoat, "
    "standing on a wooden pier in a stormy harbour, waves crashing, seagulls overhead, moody overcast sky, "
    "muted colour palette, photorealistic, 85mm lens, shallow depth of field, bokeh, film grain, kodak portra 400, "
    "by steve mccurry and annie leibovitz, national geographic cover, extremely detailed skin texture, rim light",
    "東京の猫" * 25,
    "🐱🎉" * 50,
]


def added_token(content, normalized, special=True):
    return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False, "special": special}


def typed(content, normalized):
    # tokenizer_config.json spells AddedToken objects with a "__type" tag (as the hub's SD folders do).
    d = added_token(content, normalized)
    d.pop("special")
    d["__type"] = "AddedToken"
    return d


def map_token(content, normalized):
    d = added_token(content, normalized)
    d.pop("special")
    return d


def config(pad, **extra):
    c = {"add_prefix_space": False, "bos_token": typed("<|startoftext|>", True), "do_lower_case": True,
         "eos_token": typed("<|endoftext|>", True), "errors": "replace", "model_max_length": 77,
         "pad_token": pad, "tokenizer_class": "CLIPTokenizer", "unk_token": typed("<|endoftext|>", True)}
    c.update(extra)
    return json.dumps(c, indent=2)


def special_map(pad):
    return json.dumps({"bos_token": map_token("<|startoftext|>", True), "eos_token": map_token("<|endoftext|>", True),
                       "pad_token": pad, "unk_token": map_token("<|endoftext|>", True)}, indent=2)


# Folders whose vocab/merges are the full CLIP ones but whose special-token files vary the way
# real checkpoints do: SD 1.5 (AddedToken dicts with normalized=true, pad as a plain string),
# SD 2.x (pad "!" in special_tokens_map.json, "<|endoftext|>" in tokenizer_config.json),
# a textual-inversion save (added_tokens_decoder with new tokens: special_tokens_map.json is ignored),
# a folder with only tokenizer_config.json, and one with no config files at all.
VARIANTS = {
    "sd15-configs": (special_map("<|endoftext|>"), config("<|endoftext|>")),
    "sd2-configs": (special_map("!"), config("<|endoftext|>")),
    "textual-inversion": (special_map("!"), config("<|endoftext|>", added_tokens_decoder={
        "49406": added_token("<|startoftext|>", True), "49407": added_token("<|endoftext|>", False),
        "49408": added_token("<cat-toy>", True, special=False), "49409": added_token("<DOG>", False, special=False)})),
    "config-only": (None, config("!")),
    "no-configs": (None, None),
}


def load(folder):
    return CLIPTokenizer.from_pretrained(folder)


def encodings(tok):
    out = []
    for p in PROMPTS:
        e = tok(p, padding="max_length", max_length=77, truncation=True)
        full = tok(p)["input_ids"]
        words = tok(p, add_special_tokens=False)["input_ids"]
        assert len(e["input_ids"]) == 77
        out.append({"ids": e["input_ids"], "n_tokens": sum(e["attention_mask"]), "truncated": len(full) > 77, "words": words})
    return out


def describe(tok, folder, special_tokens_map, tokenizer_config):
    probe = sorted({0, 1, 255, 256, 511, 512, 1000, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, len(tok) - 1})
    return {
        "folder": os.path.relpath(folder, REPO),
        "special_tokens_map": special_tokens_map,
        "tokenizer_config": tokenizer_config,
        "bos_id": tok.bos_token_id,
        "eos_id": tok.eos_token_id,
        "pad_id": tok.pad_token_id,
        "vocab_size": len(tok),
        "decoded": [[i, tok.convert_ids_to_tokens(i)] for i in probe],
        "encodings": encodings(tok),
    }


def read(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def char_tables(tok):
    """Per code point: what the normalizer makes of it, and its pre-tokenizer regex class."""
    normalizer = tok.backend_tokenizer.normalizer
    split = pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True)
    normalized, classes = [], []
    last = None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # surrogates cannot occur in a str
        c = chr(cp)
        n = normalizer.normalize_str(c)
        if n != c:
            normalized.append([cp, n])
        # 'a' c 'a': whitespace splits it in two, a letter joins it into one piece;
        # '!' c '!': "other" joins the punctuation run, a number stands alone.
        around_letter = [p for p, _ in split.pre_tokenize_str("a" + c + "a")]
        around_punct = [p for p, _ in split.pre_tokenize_str("!" + c + "!")]
        if around_letter == ["a", "a"]:
            cls = "W"
        elif around_letter == ["a" + c + "a"]:
            cls = "L"
        elif around_punct == ["!" + c + "!"]:
            cls = "P"
        elif around_punct == ["!", c, "!"]:
            cls = "N"
        else:
            raise RuntimeError(f"unexpected split of U+{cp:04X}: {around_letter} {around_punct}")
        if cls != last:
            classes.append([cp, cls])
            last = cls
    return normalized, classes


def main():
    write_tokenizer(FULL)
    with open(os.path.join(FULL, "merges.txt"), "rb") as f:
        merges = f.read()
    with open(BUILTIN, "wb") as f:
        f.write(zlib.compress(merges, 9))

    variants = {}
    for name, folder in [("clip-full", FULL),
                         ("tiny-sd1", os.path.join(REPO, "tests", "fixtures", "tiny-sd1", "tokenizer")),
                         ("tiny-sd2", os.path.join(REPO, "tests", "fixtures", "tiny-sd2", "tokenizer"))]:
        stm = read(os.path.join(folder, "special_tokens_map.json"))
        cfg = read(os.path.join(folder, "tokenizer_config.json"))
        variants[name] = describe(load(folder), folder, stm, cfg)
    tmp = tempfile.mkdtemp()
    try:
        for name, (stm, cfg) in VARIANTS.items():
            folder = os.path.join(tmp, name)
            os.makedirs(folder)
            for f in ["vocab.json", "merges.txt"]:
                shutil.copy(os.path.join(FULL, f), folder)
            if stm is not None:
                with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
                    f.write(stm)
            if cfg is not None:
                with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
                    f.write(cfg)
            d = describe(load(folder), folder, stm, cfg)
            d["folder"] = os.path.relpath(FULL, REPO)  # same vocab/merges as the full folder
            variants[name] = d
    finally:
        shutil.rmtree(tmp)

    normalized, classes = char_tables(load(FULL))
    ref = {
        "generator": "scripts/reference/ref_tokenizer.py",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "max_length": 77,
        "prompts": PROMPTS,
        "variants": variants,
        "normalized_chars": normalized,
        "char_classes": classes,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(PROMPTS)} prompts x {len(variants)} tokenizers, "
          f"{len(normalized)} normalized code points, {len(classes)} class runs")


if __name__ == "__main__":
    main()
