"""Checkpoint finding, checking, downloading (mocked) and loading on the tiny model."""

import json
import logging
import shutil

import pytest
import torch

from rollingdepth_core.errors import CheckpointError, InvalidSettings
from rollingdepth_core.model import checkpoint
from rollingdepth_core.model.attention import FrameAttnProcessor
from rollingdepth_core.model.checkpoint import (
    check_checkpoint,
    download_checkpoint,
    load_model,
    resolve_checkpoint,
    resolve_dtype,
)


def test_load_tiny_model(tiny_model, case_a):
    assert tiny_model.dtype == torch.float32
    assert tiny_model.device.type == "cpu"
    torch.testing.assert_close(tiny_model.empty_text_embed, case_a["empty_text_embed"], rtol=0, atol=1e-6)
    assert tiny_model.scheduler_config["rescale_betas_zero_snr"] is True
    assert all(isinstance(p, FrameAttnProcessor) for p in tiny_model.unet.attn_processors.values())
    scheduler = tiny_model.make_scheduler()
    assert scheduler.config.prediction_type == "v_prediction"
    assert float(scheduler.alphas_cumprod[999]) == 0.0
    assert not any(p.requires_grad for p in tiny_model.unet.parameters())


def test_load_bf16(tiny_model_dir):
    model = load_model(tiny_model_dir, dtype="bf16")
    assert model.dtype == torch.bfloat16
    assert next(model.unet.parameters()).dtype == torch.bfloat16
    assert model.empty_text_embed.dtype == torch.bfloat16


def test_resolve_dtype(caplog):
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype(torch.float32, "cpu") == torch.float32
    with caplog.at_level(logging.WARNING):
        assert resolve_dtype("fp16", "cpu") == torch.float32
    assert "fp16 is not supported well on the CPU" in caplog.text
    with pytest.raises(InvalidSettings, match="Unknown dtype"):
        resolve_dtype("fp8", "cpu")
    with pytest.raises(InvalidSettings, match="float32, float16 or bfloat16"):
        resolve_dtype(torch.int8, "cpu")


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        check_checkpoint(tmp_path / "nope")


def test_missing_weights_named(tiny_model_copy):
    (tiny_model_copy / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (tiny_model_copy / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(CheckpointError) as info:
        check_checkpoint(tiny_model_copy)
    message = str(info.value)
    assert "unet/diffusion_pytorch_model.safetensors" in message
    assert "scheduler/scheduler_config.json" in message
    assert "prs-eth/rollingdepth-v1-0" in message


def test_pickle_weights_are_refused(tiny_model_copy):
    weights = tiny_model_copy / "vae" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(CheckpointError, match="only safetensors are loaded"):
        check_checkpoint(tiny_model_copy)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors(tiny_model_copy, damage):
    weights = tiny_model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"not a safetensors file at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_model(tiny_model_copy)


def test_fp16_variant_files(tiny_model_copy):
    for component, stem in checkpoint.WEIGHT_STEMS.items():
        path = tiny_model_copy / component / f"{stem}.safetensors"
        path.rename(path.with_name(f"{stem}.fp16.safetensors"))
    files = check_checkpoint(tiny_model_copy)
    assert files.variant == "fp16"
    model = load_model(tiny_model_copy, dtype="fp32")
    assert model.dtype == torch.float32


def test_wrong_unet_is_refused(tiny_model_copy):
    config_path = tiny_model_copy / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["in_channels"] = 4
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        load_model(tiny_model_copy)


def test_non_ddim_scheduler_is_refused(tiny_model_copy):
    config_path = tiny_model_copy / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "EulerDiscreteScheduler"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="DDIMScheduler"):
        load_model(tiny_model_copy)


def test_neither_folder_nor_repo_id(tmp_path):
    with pytest.raises(CheckpointError, match="neither a folder nor"):
        resolve_checkpoint(str(tmp_path / "a" / "b"))


def test_offline_without_local_copy_explains_where_to_put_files(tmp_path):
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("prs-eth/rollingdepth-v1-0", cache_dir=tmp_path / "cache",
                           local_dir=tmp_path / "models" / "rollingdepth-v1-0", allow_download=False)
    message = str(info.value)
    assert "offline" in message and str(tmp_path / "models" / "rollingdepth-v1-0") in message


def test_network_failure_is_a_checkpoint_error(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr("huggingface_hub.snapshot_download", refuse)
    with pytest.raises(CheckpointError, match="no route to host"):
        download_checkpoint("prs-eth/rollingdepth-v1-0", local_dir=tmp_path / "m")


def test_download_catches_hub_errors_only(monkeypatch, tmp_path):
    """issue 8: a broad `except Exception` also turned programming errors into 'could not get'."""
    from rollingdepth_core.model.checkpoint import hub_errors

    http_error = hub_errors()[-1]  # the HTTP library's base error (connection failures too)

    def transport(*args, **kwargs):
        raise http_error("connection reset by peer")

    monkeypatch.setattr("huggingface_hub.snapshot_download", transport)
    with pytest.raises(CheckpointError, match="connection reset by peer"):
        download_checkpoint("prs-eth/rollingdepth-v1-0", local_dir=tmp_path / "m")

    def bug(*args, **kwargs):
        raise TypeError("snapshot_download() got an unexpected keyword argument")

    monkeypatch.setattr("huggingface_hub.snapshot_download", bug)
    with pytest.raises(TypeError, match="unexpected keyword"):
        download_checkpoint("prs-eth/rollingdepth-v1-0", local_dir=tmp_path / "m")


def fake_hub(source, calls):
    """A stand-in for snapshot_download that copies files of ``source`` matching the patterns."""
    from fnmatch import fnmatch

    def snapshot_download(repo_id, allow_patterns=None, local_dir=None, **kwargs):
        calls.append(sorted(allow_patterns))
        for path in source.rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch(relative, p) for p in allow_patterns):
                target = local_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
        return str(local_dir)

    return snapshot_download


def test_download_fetches_configs_and_safetensors_only(monkeypatch, tiny_model_copy, tmp_path):
    (tiny_model_copy / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    calls = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_hub(tiny_model_copy, calls))
    target = tmp_path / "models" / "rollingdepth-v1-0"
    files = resolve_checkpoint("prs-eth/rollingdepth-v1-0", local_dir=target)
    assert files.root == target
    assert not (target / "unet" / "diffusion_pytorch_model.bin").exists()
    assert all(not p.endswith(".bin") for p in calls[0])
    model = load_model(target)
    assert model.source == str(target)


def test_download_prefers_fp16_variant_and_falls_back(monkeypatch, tiny_model_copy, tmp_path):
    unet = tiny_model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    shutil.copy(unet, unet.with_name("diffusion_pytorch_model.fp16.safetensors"))
    calls = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_hub(tiny_model_copy, calls))
    folder = download_checkpoint(local_dir=tmp_path / "m", prefer_variant=True)
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert not (folder / "unet" / "diffusion_pytorch_model.safetensors").exists()
    # vae and text encoder have no fp16 files: fetched in full precision by a second call
    assert (folder / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert len(calls) == 2
    check_checkpoint(folder, prefer_variant=True)


def test_existing_local_dir_is_used_without_download(monkeypatch, tiny_model_copy):
    def refuse(*args, **kwargs):
        raise AssertionError("should not download")

    monkeypatch.setattr("huggingface_hub.snapshot_download", refuse)
    files = resolve_checkpoint("prs-eth/rollingdepth-v1-0", local_dir=tiny_model_copy)
    assert files.root == tiny_model_copy


def test_unavailable_device_is_named(tiny_model_dir):
    if torch.cuda.is_available():
        with pytest.raises(InvalidSettings, match="does not exist"):
            load_model(tiny_model_dir, device="cuda:99")
    else:
        with pytest.raises(InvalidSettings, match="no usable CUDA GPU"):
            load_model(tiny_model_dir, device="cuda")
    with pytest.raises(InvalidSettings, match="Unknown device"):
        load_model(tiny_model_dir, device="gpu0")


@pytest.mark.parametrize("version, tool", [
    ("0.33.5", "huggingface-cli"), ("0.34.0", "hf"), ("0.36.0", "hf"), ("1.1.2", "hf"),
])
def test_download_command_is_the_installed_hubs(monkeypatch, version, tool):
    # issue 9: the offline message recommended `huggingface-cli download`, gone from current releases
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "__version__", version)
    command = checkpoint.download_command("org/repo", "models/x")
    assert command == f"{tool} download org/repo --local-dir models/x"


def test_offline_message_names_the_installed_download_command(tmp_path):
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("prs-eth/rollingdepth-v1-0", cache_dir=tmp_path / "cache", allow_download=False)
    assert checkpoint.download_command("prs-eth/rollingdepth-v1-0") in str(info.value)
    assert "huggingface-cli" not in str(info.value)  # the installed huggingface_hub has `hf`
