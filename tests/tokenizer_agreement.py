#!/usr/bin/env python3
"""ctest tokenizer_agreement: a tokenizer trained by `recur tokenizer train` (BPE and unigram) encodes text to the
same ids as Debian's python3-sentencepiece with the same model, and both decode the ids to the same text; recur's
decode also gives back bytes that SentencePiece cannot (invalid UTF-8).

Usage: tokenizer_agreement.py RECUR_BINARY WORK_DIR
"""
import os
import random
import subprocess
import sys

import sentencepiece as spm

WORDS = ["the", "earth", "and", "God", "said", "light", "was", "good", "water", "day", "night", "café", "naïve",
         "日本", "über", "42", "1611", "of", "upon", "face", "thee", "thou", "hath", "unto", "Lord"]


def sample_text(lines, seed):
    rng = random.Random(seed)
    return "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + ".\n" for _ in range(lines))


def recur(binary, *args, data=None):
    run = subprocess.run([binary, "--threads", "1", *args], input=data, capture_output=True, check=False)
    if run.returncode != 0:
        sys.exit(f"recur {' '.join(args)} failed: {run.stderr.decode(errors='replace')}")
    return run.stdout


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(sample_text(600, 1))
    probes = [sample_text(3, s) for s in range(2, 12)] + ["  two  spaces\tand a tab\n", "Ｆｕｌｌｗｉｄｔｈ Ⅻ", "x"]
    failures = 0
    for model_type in ("bpe", "unigram"):
        model = os.path.join(work, f"{model_type}.model")
        recur(binary, "tokenizer", "train", "--input", corpus, "--out", model, "--model_type", model_type,
              "--vocab_size", "320")
        sp = spm.SentencePieceProcessor(model_file=model)
        for text in probes:
            ours = [int(t) for t in recur(binary, "tokenizer", "encode", "--tokenizer", model, data=text.encode()).split()]
            theirs = sp.encode(text)
            decoded = recur(binary, "tokenizer", "decode", "--tokenizer", model, data=" ".join(map(str, ours)).encode())
            if ours != theirs or decoded.decode() != sp.decode(theirs) or decoded.decode() != text:
                failures += 1
                print(f"{model_type}: {text!r}: recur {ours} / sentencepiece {theirs}; decoded {decoded!r}")
        raw = b"bytes \xff\xfe and a cut \xc3"
        ids = recur(binary, "tokenizer", "encode", "--tokenizer", model, data=raw)
        if recur(binary, "tokenizer", "decode", "--tokenizer", model, data=ids) != raw:
            failures += 1
            print(f"{model_type}: invalid UTF-8 does not round-trip")
    print(f"tokenizer agreement: {2 * len(probes)} texts, {failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
