"""The authors' command line (issue 12 §4): each of their spellings means what ours does, their
options with no job here are noted (never an error), and the README's table lists only options
the command line accepts."""

import re
from pathlib import Path

import pytest

from rollingdepth_core import cli

ROOT = Path(__file__).resolve().parents[1]
BASE = ["clip.mp4", "-o", "out"]


def parsed(words: list[str]) -> dict:
    """What the command line makes of ``words``: its options in one spelling, with what to write
    (`cli.output_options`) in place of the options that only feed it."""
    args = cli.normalize_args(cli.build_parser().parse_args(words))
    values = {**vars(args), "write": cli.output_options(args)}
    for spelling in ("input_option", "save_npy", "colormap", "colormaps", "outputs", "fps"):
        values.pop(spelling)
    return values


# (their spelling, our spelling): same meaning, so the same parsed options
SAME = [
    (["-i", "clip.mp4", "-o", "out"], BASE),
    (["--input-video", "clip.mp4", "-o", "out"], BASE),
    (["clip.mp4", "--output-dir", "out"], BASE),
    ([*BASE, "--res", "512"], [*BASE, "-r", "512"]),
    ([*BASE, "--processing-resolution", "512"], [*BASE, "--resolution", "512"]),
    ([*BASE, "--max-vae-bs", "2"], [*BASE, "--vae-batch-size", "2"]),
    ([*BASE, "--output-fps", "12"], [*BASE, "--fps", "12"]),
    ([*BASE, "--output-fps", "0"], BASE),  # their 0: the input's frame rate
    ([*BASE, "--restore-res", "true"], [*BASE, "--restore-resolution"]),
    ([*BASE, "--restore-res", "false"], [*BASE, "--restore-resolution", "false"]),
    ([*BASE, "--save-npy", "false"], [*BASE, "--outputs", "png16,video"]),
    ([*BASE, "--save-npy", "true", "--outputs", "png16"], [*BASE, "--outputs", "png16,npz"]),
    ([*BASE, "--cmap", "Spectral_r", "gray"], [*BASE, "--colormap", "Spectral_r", "gray"]),
    ([*BASE, "--color-maps", "gray"], [*BASE, "--colormap", "gray"]),
    ([*BASE, "--cmap", ""], [*BASE, "--outputs", "npz,png16"]),  # their '' = no colour video
    ([*BASE, "-d", "1", "10", "25"], [*BASE, "-d", "1,10,25"]),
    (["-d", "1", "10", "25", "clip.mp4", "-o", "out"], [*BASE, "--dilations", "1,10,25"]),
    ([*BASE, "--cap-dilation", "true"], [*BASE, "--cap-dilation"]),
    ([*BASE, "--cap-dilation", "false"], [*BASE, "--no-cap-dilation"]),
    ([*BASE, "--snip-len", "4"], [*BASE, "--snippet-length", "4"]),
    ([*BASE, "--snippet-lengths", "4", "4", "4"], [*BASE, "--snippet-length", "4"]),
    ([*BASE, "--refine-step", "3"], [*BASE, "--refine-steps", "3"]),
    ([*BASE, "--refine-snippet-len", "5"], [*BASE, "--refine-snippet-length", "5"]),
    ([*BASE, "--from", "4"], [*BASE, "--start-frame", "4"]),
    ([*BASE, "--frames", "9"], [*BASE, "--frame-count", "9"]),
    ([*BASE, "-c", "ckpt"], [*BASE, "-m", "ckpt"]),
    ([*BASE, "--checkpoint", "ckpt"], [*BASE, "--model", "ckpt"]),
    ([*BASE, "--data-type", "fp16"], [*BASE, "--dtype", "fp16"]),
]


@pytest.mark.parametrize("theirs, ours", SAME, ids=[" ".join(t) for t, _ in SAME])
def test_their_spelling_means_ours(theirs, ours):
    assert parsed(theirs) == parsed(ours)


def test_their_values_reach_the_settings():
    args = cli.normalize_args(cli.build_parser().parse_args([
        "-i", "clip.mp4", "--output-dir", "out", "-p", "full", "--res", "320", "-d", "1", "4", "9",
        "--cap-dilation", "false", "--snip-len", "3", "--refine-step", "2", "--refine-snippet-len", "5",
        "--refine-start-dilation", "4", "--data-type", "fp32",
    ]))
    settings = cli.settings_from_args(args)
    assert settings.processing_resolution == 320
    assert (settings.dilations, settings.cap_dilation) == ((1, 4, 9), False)
    assert (settings.snippet_length, settings.refine_steps, settings.refine_snippet_length) == (3, 2, 5)
    assert (settings.refine_start_dilation, settings.dtype) == (4, "fp32")


@pytest.mark.parametrize("words, note", [
    (["--unload-snippet"], "--unload-snippet: not needed"),
    (["--unload-snippet", "false"], "--unload-snippet: not needed"),
    (["--save-sbs", "true"], "--save-sbs: no side-by-side video is written"),
    (["--save-side-by-side"], "--save-sbs: no side-by-side video is written"),
    (["--save-snippets", "true"], "--save-snippets: snippet depths are not saved"),
    (["--resample-method", "BICUBIC"], "--resample-method BICUBIC: frames are resized bilinearly"),
])
def test_their_options_without_a_job_get_one_note(words, note, caplog):
    args = cli.normalize_args(cli.build_parser().parse_args([*BASE, *words]))
    cli.log_notes(args)
    notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(notes) == 1 and notes[0].startswith(note), notes
    assert "\n" not in notes[0]


def their_options_in_the_readme() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("### Coming from the authors'", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return sorted({option for cell in rows for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", cell)})


def test_the_readme_table_lists_options_the_command_line_accepts():
    known = cli.build_parser()._option_string_actions
    options = their_options_in_the_readme()
    expected = {"-i", "--input-video", "--max-vae-bs", "--snip-len", "--unload-snippet", "--save-sbs"}
    assert expected <= set(options)
    assert [o for o in options if o not in known] == []
