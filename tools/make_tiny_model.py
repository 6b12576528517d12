"""Make the tiny random-weight Llama that tests and the demo run on, locally, with no download.

hidden 128, 2 heads of head_dim 64 (the CPU attention refuses head_dim 16), 2 layers, and a
word-level tokenizer trained here on a few sentences. Idempotent: an existing model is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_CORPUS = (
    "the quick brown fox jumps over the lazy dog . "
    "vllm serves large language models fast . "
    "a scheduler picks which request runs next . "
    "priority requests go first , low priority requests wait . "
    "hello world , this is a tiny model for tests ."
)
_MARKER = "vllm-surgeon-tiny-model.json"


def make(out: Path) -> Path:
    """Write the model to `out` (a directory) unless it is already complete there."""
    if (out / _MARKER).is_file():
        return out
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok.train_from_iterator([_CORPUS] * 4, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    (out / _MARKER).write_text(json.dumps({"made_by": "tools/make_tiny_model.py"}) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write the model into")
    args = parser.parse_args(argv)
    print(make(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
