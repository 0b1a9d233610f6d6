"""Tiny random checkpoints made like golden tiny_v1 (golden/README.md §1), for the sweep."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rollingdepth_core.bench.tiny_checkpoint import byte_symbols, write_tiny_checkpoint


@pytest.fixture(scope="module")
def seed_1000(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny_1000", 1000)


@pytest.mark.parametrize("part", ["unet", "vae"])
def test_seed_1000_is_tiny_v1(seed_1000, tiny_model_dir, part):
    """The recipe reproduces the authors' tiny model bit for bit (the text encoder's default
    initialisation differs between transformers versions, so only its layout is compared)."""
    ours = load_file(seed_1000 / part / "diffusion_pytorch_model.safetensors")
    theirs = load_file(tiny_model_dir / part / "diffusion_pytorch_model.safetensors")
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert torch.equal(ours[name], tensor), name
    ours_config = json.loads((seed_1000 / part / "config.json").read_text())
    theirs_config = json.loads((tiny_model_dir / part / "config.json").read_text())
    for key in ("block_out_channels", "in_channels", "out_channels", "norm_num_groups"):
        assert ours_config[key] == theirs_config[key]


def test_layout_loads_and_embeds_the_empty_prompt(seed_1000, tiny_model_dir, tmp_path):
    from transformers import CLIPTokenizer

    from rollingdepth_core.model.checkpoint import check_checkpoint, load_model

    check_checkpoint(seed_1000)
    ours = CLIPTokenizer.from_pretrained(seed_1000, subfolder="tokenizer")
    theirs = CLIPTokenizer.from_pretrained(tiny_model_dir, subfolder="tokenizer")
    for text in ("", "depth an", "a b"):
        assert ours(text).input_ids == theirs(text).input_ids
    assert ours("").input_ids == [518, 519]
    assert (json.loads((seed_1000 / "model_index.json").read_text())["_class_name"]
            == "RollingDepthPipeline")
    model = load_model(seed_1000, device="cpu", dtype="fp32", allow_download=False)
    assert tuple(model.empty_text_embed.shape) == (1, 2, 32)
    other = load_model(write_tiny_checkpoint(tmp_path / "tiny_7", 7), device="cpu", dtype="fp32",
                       allow_download=False)
    weight = "conv_in.weight"
    assert not torch.equal(model.unet.state_dict()[weight], other.unet.state_dict()[weight])


def test_byte_symbols_are_the_byte_level_alphabet():
    symbols = byte_symbols()
    assert len(symbols) == len(set(symbols)) == 256
    assert symbols[0] == "!" and symbols[-1] == chr(256 + 67)  # 188 printable, 68 moved
    assert all(len(s) == 1 and not s.isspace() for s in symbols)
