"""Tiny random RollingDepth checkpoints in the published folder layout, made like golden tiny_v1.

`golden/README.md` §1 describes how `tiny_v1` was made: the tiny UNet / VAE / CLIP text
encoder configs, each part's default random initialisation under `torch.manual_seed(seed)`,
N(0, 0.02) noise on every parameter (generator seeded `seed + 1`), then every UNet
self-attention's `to_q` and `to_k` weights times 2.5 and `to_out[0]` times 20 (so
cross-frame attention matters). `write_tiny_checkpoint` does the same for any seed, so the
co-alignment sweep (`bench align --cases sweep`) sees snippets from models that were not
tuned on: the same kind of model, other weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .architectures import SCHEDULER_CONFIG, unet_config, vae_config

TEXT_CONFIG = dict(
    vocab_size=520, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=2, hidden_act="gelu", max_position_embeddings=77, projection_dim=32,
    bos_token_id=518, eos_token_id=519, pad_token_id=0,
)
MERGES = ("d e", "de p", "dep t", "dept h</w>", "t h</w>", "a n")  # tiny_v1's six merges
NOISE_STD = 0.02
QUERY_KEY_GAIN = 2.5  # self-attention to_q / to_k
OUTPUT_GAIN = 20.0  # self-attention to_out[0]


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins of the bytes, in the byte-level BPE order (GPT-2 / CLIP):
    printable Latin-1 bytes map to themselves, the rest to code points from 256 on."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in kept]
    return [chr(b) for b in kept] + [chr(256 + i) for i in range(len(extra))]


def tokenizer_files(folder: Path) -> None:
    """`vocab.json`, `merges.txt` and the configs of tiny_v1's tokenizer ("" -> [518, 519])."""
    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    for merge in MERGES:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "pad_token": "!"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {**special, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer",
         "errors": "replace"}))


@torch.no_grad()
def perturb_(modules: list[torch.nn.Module], seed: int) -> None:
    """N(0, 0.02) on every parameter, then the self-attention gains (golden README §1)."""
    generator = torch.Generator("cpu").manual_seed(seed + 1)
    for module in modules:
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * NOISE_STD)
    for name, module in modules[0].named_modules():
        if name.endswith("attn1"):
            module.to_q.weight.mul_(QUERY_KEY_GAIN)
            module.to_k.weight.mul_(QUERY_KEY_GAIN)
            module.to_out[0].weight.mul_(OUTPUT_GAIN)


def write_tiny_checkpoint(folder: Path | str, seed: int) -> Path:
    """Write a tiny random checkpoint (tiny_v1's layout and recipe, weights from ``seed``).

    Returns the folder, loadable with `rollingdepth_core.load_model`.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config("tiny"))
    vae = AutoencoderKL(**vae_config("tiny"))
    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    perturb_([unet, vae, text], seed)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    tokenizer_files(folder / "tokenizer")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler", **SCHEDULER_CONFIG}, indent=1))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "RollingDepthPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }, indent=1))
    return folder
