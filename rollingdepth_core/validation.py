"""Every setting checked once, the same way, before anything loads or runs.

`SETTINGS` maps a setting's name to its one check; `check_settings` runs them on a dict of
values, `check_preset` on a whole `Preset` (or a preset's name). The Python API
(`estimate_depth`), the command line (before the model loads) and the nodes (in
`VALIDATE_INPUTS`, at queue time, and again when they run) all call these, each with its own
`Wording`, so the message names the setting the way that interface does (``refine_steps``,
``--refine-steps``, the ``num_steps`` widget).

To add a setting (a new flag or widget), add its check to `SETTINGS`; the builders
(`whole_number`, `number`, `choice`, `flag`, `optional_path`) cover most.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from collections.abc import Callable, Mapping

from .coalign.methods import available_methods
from .conversion.convert import MODES as CONVERSION_MODES
from .errors import InvalidSettings
from .io.colormaps import COLORMAPS, is_colormap
from .io.exr import COMPRESSIONS as EXR_COMPRESSIONS
from .io.exr import PIXEL_TYPES as EXR_PIXEL_TYPES
from .io.image_files import WINDOWS
from .io.outputs import parse_kinds
from .io.result_set import EXISTING_POLICIES, check_writable_folder
from .presets import PRESETS, Preset, parse_dilations
from .runtime.batch_sizes import check_batch_size
from .runtime.devices import check_device
from .wording import API, Wording

MAX_PROCESSING_RESOLUTION = 4096  # longest side; the model was trained at 768
MAX_SNIPPET_LENGTH = 16  # frames per snippet (trained with 3)
MAX_REFINE_STEPS = 500  # refinement uses the second half of 2 K of the scheduler's 1000 steps
SEED_MAX = 2**64 - 1  # torch generators take 64-bit seeds
DTYPE_CHOICES = ("auto", "fp32", "fp16", "bf16")

# check(value, setting, wording) -> the value, normalised (e.g. dilations as a tuple)
Check = Callable[[object, str, Wording], object]


def _got(value: object) -> str:
    return f"got {value!r}" + ("" if isinstance(value, (int, float, str)) else f" ({type(value).__name__})")


def whole_number(minimum: int = 0, maximum: int | None = None, note: str = "") -> Check:
    """A check for an int in ``minimum .. maximum`` (bools and floats refused)."""

    def check(value: object, setting: str, wording: Wording) -> int:
        try:
            number = operator.index(value) if not isinstance(value, bool) else None
        except TypeError:
            number = None
        within = number is not None and number >= minimum and (maximum is None or number <= maximum)
        if not within:
            span = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            extra = f" ({note})" if note else ""
            raise InvalidSettings(
                f"{wording.name(setting)} must be a whole number {span}{extra}; {_got(value)}."
            )
        return int(number)

    return check


def number(minimum: float = 0.0, maximum: float | None = None, above: bool = False) -> Check:
    """A check for a real number ``>= minimum`` (``> minimum`` with ``above``), ``<= maximum``."""

    def check(value: object, setting: str, wording: Wording) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        ok = ok and (value > minimum if above else value >= minimum)
        ok = ok and (maximum is None or value <= maximum)
        if not ok:
            low = f"> {minimum}" if above else f">= {minimum}"
            span = low if maximum is None else f"{low} and <= {maximum}"
            raise InvalidSettings(f"{wording.name(setting)} must be a number {span}; {_got(value)}.")
        return float(value)

    return check


def choice(options: tuple[str, ...]) -> Check:
    """A check for one of ``options``."""

    def check(value: object, setting: str, wording: Wording) -> str:
        if not isinstance(value, str) or value not in options:
            raise InvalidSettings(
                f"{wording.name(setting)} must be one of {', '.join(options)}; {_got(value)}."
            )
        return value

    return check


def flag(value: object, setting: str, wording: Wording) -> bool:
    """A check for True / False."""
    if not isinstance(value, bool):
        raise InvalidSettings(f"{wording.name(setting)} must be True or False; {_got(value)}.")
    return value


def optional_path(value: object, setting: str, wording: Wording) -> object:
    """A check for None or a path (str / os.PathLike)."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise InvalidSettings(f"{wording.name(setting)} must be a folder path or None; {_got(value)}.")
    return value


def storage_folder(value: object, setting: str, wording: Wording) -> object:
    """A check for None or a folder that can be created and written to (it is created)."""
    optional_path(value, setting, wording)
    if value is not None:
        check_writable_folder(value, wording.name(setting))
    return value


def optional(check: Check) -> Check:
    """``check``, but None passes (meaning "the default")."""
    return lambda value, setting, wording: None if value is None else check(value, setting, wording)


def _dilations(value: object, setting: str, wording: Wording) -> tuple[int, ...]:
    try:
        return parse_dilations(value)
    except InvalidSettings as error:
        raise InvalidSettings(str(error).replace("dilations", wording.name(setting), 1)) from None


def _batch(value: object, setting: str, wording: Wording) -> object:
    check_batch_size(value, wording.name(setting))
    return value


def _colormaps(value: object, setting: str, wording: Wording) -> tuple[str, ...]:
    maps = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (tuple, list)) else None
    bad = [m for m in maps or (value,) if not is_colormap(m)] if maps else [value]
    if bad:
        raise InvalidSettings(
            f"{wording.name(setting)}: unknown colour map {bad[0]!r}. Choose one of {', '.join(COLORMAPS)}."
        )
    return maps


def _outputs(value: object, setting: str, wording: Wording) -> tuple[str, ...]:
    try:
        return parse_kinds(value)
    except InvalidSettings as error:
        raise InvalidSettings(str(error).replace("outputs", wording.name(setting), 1)) from None


def _frame_range(value: object, setting: str, wording: Wording) -> object:
    from .io.sequences import parse_frame_range

    try:
        return parse_frame_range(value)
    except InvalidSettings as error:
        raise InvalidSettings(f"{wording.name(setting)}: {error}") from None


def _colour_space(value: object, setting: str, wording: Wording) -> str:
    from .io.colour import check_colour_space

    if not isinstance(value, str):
        raise InvalidSettings(f"{wording.name(setting)} must be a colour space name; {_got(value)}.")
    try:
        check_colour_space(value)
    except InvalidSettings as error:
        raise InvalidSettings(f"{wording.name(setting)}: {error}") from None
    return value


def _text(value: object, setting: str, wording: Wording) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidSettings(f"{wording.name(setting)} must be a non-empty text; {_got(value)}.")
    return value.strip()


def _device(value: object, setting: str, wording: Wording) -> object:
    if value is None:
        return None
    return check_device(value, wording)


SETTINGS: dict[str, Check] = {
    # the preset (`Preset` fields)
    "processing_resolution": whole_number(
        0, MAX_PROCESSING_RESOLUTION, "longest side; 0 keeps the input size"
    ),
    "dilations": _dilations,
    "dtype": choice(DTYPE_CHOICES),
    "refine_steps": whole_number(0, MAX_REFINE_STEPS, "0 turns refinement off"),
    "cap_dilation": flag,
    "snippet_length": whole_number(1, MAX_SNIPPET_LENGTH, "the model was trained with 3"),
    "refine_start_dilation": whole_number(1),
    "refine_snippet_length": whole_number(1, MAX_SNIPPET_LENGTH),
    # a run
    "seed": whole_number(0, SEED_MAX),
    "coalign_method": choice(available_methods()),
    "snippets_per_batch": _batch,
    "vae_batch_size": _batch,
    "restore_size": flag,
    "storage_dir": storage_folder,
    "device": _device,
    "start_frame": whole_number(0),
    "frame_count": whole_number(0, note="0 reads to the end"),
    # co-alignment (`CoalignSettings` fields the interfaces expose)
    "num_iterations": whole_number(0, 1_000_000),
    "learning_rate": number(0.0, above=True),
    "depth_term_weight": number(0.0),
    "scale_reg_weight": number(0.0),
    "shift_reg_weight": number(0.0),
    "subsample": whole_number(1, 1024),
    # outputs
    "outputs": _outputs,
    "colormap": _colormaps,
    "fps": optional(number(0.0, above=True)),
    "existing": choice(EXISTING_POLICIES),
    "low_percentile": number(0.0, 100.0),
    "high_percentile": number(0.0, 100.0),
    # plates in, depth conversion, EXR out (issue 10; the combined checks are in
    # `conversion.DepthConversion.check` and `io.exr.ExrOptions.check`)
    "frame_range": optional(_frame_range),
    "colour_space": _colour_space,
    "window": choice(WINDOWS),
    "depth_conversion": choice(CONVERSION_MODES),
    "near": number(0.0, above=True),
    "far": number(0.0, above=True),
    "units": _text,
    "max_depth": optional(number(0.0, above=True)),
    "exr_channel": _text,
    "exr_pixel_type": choice(EXR_PIXEL_TYPES),
    "exr_compression": choice(EXR_COMPRESSIONS),
    "spread": flag,
}


def check_settings(values: Mapping[str, object], wording: Wording = API) -> dict[str, object]:
    """Check every value with its entry in `SETTINGS`; return them normalised.

    Also checks the pairs that must agree (low < high percentile).

    Raises:
        InvalidSettings: the first bad value, named as ``wording`` names it.
        KeyError: a name that has no check (a programming error).
    """
    checked = {name: SETTINGS[name](value, name, wording) for name, value in values.items()}
    low, high = checked.get("low_percentile"), checked.get("high_percentile")
    if low is not None and high is not None and not low < high:
        raise InvalidSettings(
            f"{wording.name('low_percentile')} must be below {wording.name('high_percentile')}; "
            f"got {low} and {high}."
        )
    near, far = checked.get("near"), checked.get("far")
    if near is not None and far is not None and not near < far:
        raise InvalidSettings(
            f"{wording.name('near')} must be nearer than {wording.name('far')}; got {near} and {far}."
        )
    return checked


def check_preset(settings: Preset | str, wording: Wording = API) -> Preset:
    """A `Preset` (or the name of one of `PRESETS`) with every field checked.

    Raises:
        InvalidSettings: not a preset or a preset name, or a field out of range.
    """
    if isinstance(settings, str):
        if settings not in PRESETS:
            raise InvalidSettings(
                f"Unknown preset {settings!r}. Choose one of {', '.join(PRESETS)}, or pass a Preset."
            )
        settings = PRESETS[settings]
    if not isinstance(settings, Preset):
        raise InvalidSettings(
            f"settings must be a Preset (e.g. PRESETS['fast']) or a preset name; "
            f"got {type(settings).__name__}."
        )
    values = check_settings(dataclasses.asdict(settings), wording)
    return dataclasses.replace(settings, **values)


def check_run(
    model,
    source,
    settings: Preset | str,
    seed: int,
    coalign_method: str,
    coalign_settings,
    snippets_per_batch,
    vae_batch_size,
    restore_size: bool,
    storage_dir,
    hooks_for,
    noise=None,
    wording: Wording = API,
    spread: bool = False,
):
    """Everything `estimate_depth` is given, checked before it encodes a single frame.

    Args:
        model: the loaded `DepthModel`.
        source: the clip as a `FrameSource`.
        the rest: `estimate_depth`'s arguments.

    Returns:
        `(preset, plan)`: the checked preset and the clip's snippet plan.

    Raises:
        InvalidSettings: a bad setting, or a run that does not fit in free memory.
        InvalidInput: noise of the wrong shape.
    """
    from .coalign.problem import CoalignSettings
    from .io.frames import padding_for, processing_size
    from .model.noise import check_noise
    from .runtime.memory_estimate import architecture_of
    from .stages.snippets import plan_snippets
    from .types import DepthModel

    if not isinstance(model, DepthModel):
        raise InvalidSettings(
            f"model must be a loaded DepthModel (from load_model); got {type(model).__name__}."
        )
    settings = check_preset(settings, wording)
    check_settings({
        "seed": seed, "coalign_method": coalign_method, "snippets_per_batch": snippets_per_batch,
        "vae_batch_size": vae_batch_size, "restore_size": restore_size, "storage_dir": storage_dir,
        "spread": spread,
    }, wording)
    if not isinstance(coalign_settings, CoalignSettings):
        raise InvalidSettings(
            f"{wording.name('coalign_settings')} must be a CoalignSettings; "
            f"got {type(coalign_settings).__name__}."
        )
    from .hooks import Hooks

    if not (callable(hooks_for) or isinstance(hooks_for, Hooks)):
        raise InvalidSettings(
            f"hooks_for must be a function stage -> Hooks, or one Hooks; got {type(hooks_for).__name__}."
        )
    size = processing_size(*source.input_size, settings.processing_resolution)
    pad = padding_for(size)
    if noise is not None:
        check_noise(noise, ((size[0] + pad[0]) // 8, (size[1] + pad[1]) // 8))
    plan = plan_snippets(
        source.num_frames, settings.dilations, settings.snippet_length, settings.cap_dilation
    )
    check_run_memory(
        settings, source.num_frames, source.input_size, model.device, model.dtype, architecture_of(model),
        snippets_per_batch, vae_batch_size, storage_dir, restore_size, weights_loaded=True, plan=plan,
        wording=wording, spread=spread,
    )
    return settings, plan


def check_run_memory(
    settings: Preset,
    num_frames: int,
    input_size: tuple[int, int],
    device,
    dtype,
    architecture,
    snippets_per_batch=1,
    vae_batch_size=1,
    storage_dir=None,
    restore_size: bool = False,
    frames_in_memory: bool = False,
    weights_loaded: bool = False,
    plan=None,
    wording: Wording = API,
    spread: bool = False,
) -> None:
    """Refuse a run that cannot fit in free host or device memory (`memory_estimate`).

    Used by `estimate_depth` (model loaded) and by the command line before it loads one.

    Args:
        settings: the checked preset.
        num_frames, input_size: the clip.
        device, dtype: where and in what the model runs (a torch dtype).
        architecture: `memory_estimate.Architecture` of the checkpoint.
        snippets_per_batch, vae_batch_size: numbers, or "auto" (1 on a GPU, where automatic
            batches grow into what is free; on a CPU the fixed defaults, `types.RunBatches()`).
        storage_dir: snippet depths on disk.
        restore_size: depth resized back to the input size.
        frames_in_memory: the frames are read up front at processing size (image folders).
        weights_loaded: the weights are on the device already.
        plan: the clip's `SnippetPlan` (made here when None).
        wording: how the message names the settings.
        spread: the run keeps the spread of the predictions too.

    Raises:
        InvalidSettings: with the estimate, its largest parts and the free memory.
    """

    from .io.frames import processing_size
    from .runtime.memory_estimate import check_memory, estimate_run_memory
    from .stages.snippets import plan_snippets

    size = processing_size(*input_size, settings.processing_resolution)
    if plan is None:
        plan = plan_snippets(num_frames, settings.dilations, settings.snippet_length, settings.cap_dilation,
                             log=False)
    estimate = estimate_run_memory(
        num_frames, size, plan.num_snippets * plan.snippet_length, dtype, device, architecture,
        input_size, snippets_on_disk=storage_dir is not None, frames_in_memory=frames_in_memory,
        restore_size=restore_size, weights_loaded=weights_loaded, snippets_per_batch=snippets_per_batch,
        vae_batch_size=vae_batch_size, snippet_length=plan.snippet_length, spread=spread,
    )
    check_memory(
        estimate, device, f"{num_frames} frame(s) at {size[1]}x{size[0]}",
        f"Lower {wording.name('processing_resolution')} or {wording.name('snippets_per_batch')}, "
        f"process fewer frames, or keep snippet depths on disk ({wording.name('storage_dir')}).",
    )
