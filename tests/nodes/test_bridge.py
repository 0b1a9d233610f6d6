"""comfy_bridge against stand-ins for ComfyUI's modules (the real server is the manual check in
the README): progress bar, interrupt, memory management, folders, dtype choice."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from rollingdepth_pack.nodes import comfy_bridge


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


@pytest.fixture
def fake_comfy(monkeypatch, tmp_path):
    """Minimal `comfy.model_management`, `comfy.utils`, `comfy.model_patcher`, `folder_paths`."""
    log: dict[str, list] = {"bar": [], "loads": [], "interrupt": [False]}

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            log["bar"].append((value, total))

    def throw_exception_if_processing_interrupted():
        if log["interrupt"][0]:
            log["interrupt"][0] = False
            raise Interrupted()

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device

    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.should_use_fp16 = lambda device=None: False
    mm.should_use_bf16 = lambda device=None: True
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.load_models_gpu = lambda models, **kwargs: log["loads"].append((models, kwargs))
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    patcher = types.ModuleType("comfy.model_patcher")
    patcher.ModelPatcher = ModelPatcher
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.utils, comfy.model_patcher = mm, utils, patcher
    paths = {"diffusers": [str(tmp_path / "diffusers")]}
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path / "models")
    fp.add_model_folder_path = lambda name, path: paths.setdefault(name, [path])
    fp.get_folder_paths = lambda name: list(paths[name])
    fp.get_output_directory = lambda: str(tmp_path / "output")
    for name, module in {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils,
                         "comfy.model_patcher": patcher, "folder_paths": fp}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return log


def test_fallbacks_without_comfyui():
    from rollingdepth_pack.rollingdepth_core.hooks import NO_HOOKS, Hooks

    assert "comfy" not in sys.modules
    assert comfy_bridge.compute_device() == torch.device("cpu")
    assert comfy_bridge.offload_device() == comfy_bridge.intermediate_device() == torch.device("cpu")
    # outside ComfyUI: the core's plain hooks (no progress bar, never cancelled)
    hooks = comfy_bridge.hooks()
    assert hooks == Hooks() == NO_HOOKS
    assert hooks.progress(1, 2) is None and hooks.check_cancel() is None
    assert "comfy" not in sys.modules and "comfy.utils" not in sys.modules  # nothing imported on the way
    assert comfy_bridge.auto_dtype(torch.device("cpu")) == "fp32"
    assert comfy_bridge.auto_dtype(torch.device("cuda")) == "fp16"


def test_hooks_drive_progress_bar_and_interrupt(fake_comfy):
    hooks = comfy_bridge.hooks()
    hooks.progress(3, 10)
    hooks.check_cancel()
    assert fake_comfy["bar"] == [(3, 10)]
    fake_comfy["interrupt"][0] = True
    with pytest.raises(Interrupted):
        hooks.check_cancel()


def test_model_is_handed_to_comfy_memory_management(fake_comfy, pack_model):
    handle = comfy_bridge.manage(pack_model.model)
    weights = handle.patcher.model
    assert isinstance(weights, torch.nn.Module) and weights.unet is pack_model.model.unet
    assert weights.get_dtype() == torch.float32
    model = comfy_bridge.model_for_inference(handle, memory_required=123)
    assert model.unet is pack_model.model.unet and model.vae is pack_model.model.vae
    (models, kwargs), = fake_comfy["loads"]
    assert models == [handle.patcher] and kwargs == {"memory_required": 123, "force_full_load": True}
    assert comfy_bridge.auto_dtype(torch.device("cuda")) == "bf16"  # should_use_bf16 in the fake


def test_model_for_inference_leaves_the_cached_model_unchanged(pack_model):
    # issue 8: the handle's model is a cached node output; it used to get a new embedding
    # assigned in place on every run
    cached = pack_model.model
    embed, fields = cached.empty_text_embed, dict(vars(cached))
    model = comfy_bridge.model_for_inference(pack_model)
    assert model is not cached and cached.empty_text_embed is embed and vars(cached) == fields
    assert model.unet is cached.unet and torch.equal(model.empty_text_embed, embed)


def test_prepare_run_frees_the_estimate_then_resolves_batches_once(fake_comfy, pack_model):
    from rollingdepth_pack.rollingdepth_core.types import RunBatches

    handle = comfy_bridge.manage(pack_model.model)
    model, batches = comfy_bridge.prepare_run(handle, (432, 768), 0, 3, "auto")
    (models, kwargs), = fake_comfy["loads"]
    expected = comfy_bridge.inference_memory(handle, (432, 768), 0, 3, "auto", "auto")
    assert models == [handle.patcher] and kwargs["memory_required"] == expected
    assert model.unet is pack_model.model.unet
    assert batches == RunBatches(8, 4)  # free memory unknown (the fake runs on the CPU)
    assert comfy_bridge.prepare_run(handle, (432, 768), 0, 3, 5)[1] == RunBatches(5, 4)


def test_inference_memory_is_the_core_estimate(pack_model):
    from rollingdepth_pack.rollingdepth_core.errors import InvalidSettings

    def memory(size, resolution, snippets, vae):
        return comfy_bridge.inference_memory(pack_model, size, resolution, 3, snippets, vae)

    assert memory((432, 768), 0, 16, 1) > memory((432, 768), 0, 4, 1) > 0
    assert memory((432, 768), 0, 1, 16) > memory((432, 768), 0, 1, 1)
    # "auto" asks ComfyUI for the default batches' memory; the batch then grows into what is free
    assert memory((432, 768), 0, "auto", "auto") == memory((432, 768), 0, 8, 4)
    # 1080p processed at 768 is 768 x 432: the same as 432 x 768 at its own size
    assert memory((1080, 1920), 768, 8, 4) == memory((432, 768), 0, 8, 4)
    with pytest.raises(InvalidSettings, match="snippets_per_batch"):
        memory((432, 768), 0, 0, 4)


def write_checkpoint(folder, in_channels):
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": in_channels}))
    (folder / "model_index.json").write_text("{}")


def test_model_menu_lists_rollingdepth_and_diffusers_folders(fake_comfy, tmp_path):
    write_checkpoint(tmp_path / "models" / "rollingdepth" / "my-finetune", 8)
    write_checkpoint(tmp_path / "diffusers" / "marigold-depth", 8)
    write_checkpoint(tmp_path / "diffusers" / "stable-diffusion-2", 4)  # not a depth model
    found = comfy_bridge.find_checkpoints()
    assert list(found) == ["rollingdepth-v1-0", "my-finetune", "diffusers/marigold-depth"]
    # missing default: listed anyway, its folder is where the download goes
    assert found["rollingdepth-v1-0"] == tmp_path / "models" / "rollingdepth" / "rollingdepth-v1-0"
    assert comfy_bridge.output_folder() == tmp_path / "output"
