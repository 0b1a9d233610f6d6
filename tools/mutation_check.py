"""Mutation check: do the tests notice when the method breaks? (issue 12 §2)

Each mutation is one deliberate change to the code (the objective, the attention grouping of
frames, the timestep, the noise sharing, the merge, a node widget dropped, ...). In a
temporary copy of the checkout, every mutation is applied alone, the tests that guard that
part are run, and the change is undone. A mutation passes the check when at least one test
turns red; one that leaves every test green ("SURVIVED") or whose code is no longer found
("STALE", update the mutation after a refactor) makes the check fail.

    python tools/mutation_check.py              # all mutations, a table at the end
    python tools/mutation_check.py --list       # names only
    python tools/mutation_check.py --only noise-not-shared,merge-ignores-shifts

The tests run in the copy with this interpreter (its environment must have the test extras)
and the golden data found as the test suite finds it (ROLLINGDEPTH_GOLDEN or shared/golden).
First the union of all selected tests runs unmutated and must pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """One deliberate change: replace ``old`` (found exactly once in ``path``) by ``new``.

    Attributes:
        name: short id.
        what: what the change breaks, in words.
        path: file relative to the checkout.
        old, new: the text replaced and its replacement.
        tests: pytest node ids or files that must catch it.
    """

    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "fast-ignores-depth-weight", "fast solver ignores depth_term_weight (always 1)",
        "rollingdepth_core/coalign/fast_system.py",
        "depth_unit = settings.depth_term_weight / (depth_frame_scale * denominator)",
        "depth_unit = 1.0 / (depth_frame_scale * denominator)",
        ("tests/coalign/test_settings_effects.py", "tests/coalign/test_fast.py"),
    ),
    Mutation(
        "objective-fixed-shift-weight", "objective ignores shift_reg_weight (always 10)",
        "rollingdepth_core/coalign/problem.py",
        "+ settings.shift_reg_weight * t.square().mean()",
        "+ 10.0 * t.square().mean()",
        ("tests/coalign/test_settings_effects.py", "tests/coalign/test_coalign.py"),
    ),
    Mutation(
        "attention-per-frame", "self-attention no longer groups a snippet's frames",
        "rollingdepth_core/model/attention.py",
        "fold = self.cross_frame and encoder_hidden_states is None and num_frames > 1",
        "fold = False",
        ("tests/model/test_attention.py",
         "tests/test_e2e_golden.py::test_three_frames_are_the_authors_first_snippet"),
    ),
    Mutation(
        "timestep-off-by-one", "snippets denoised at timestep 998 instead of 999",
        "rollingdepth_core/stages/denoise.py",
        "timestep = int(scheduler.timesteps[0])",
        "timestep = int(scheduler.timesteps[0]) - 1",
        ("tests/stages/test_denoise.py",
         "tests/test_e2e_golden.py::test_one_frame_is_the_single_image_model"),
    ),
    Mutation(
        "refine-first-half", "refinement uses the first half of the timesteps (from T, not T/2)",
        "rollingdepth_core/stages/refine.py",
        "for t in scheduler.timesteps[num_steps:]]",
        "for t in scheduler.timesteps[:num_steps]]",
        ("tests/stages/test_refine.py",),
    ),
    Mutation(
        "noise-not-shared", "every snippet frame starts from its own noise draw",
        "rollingdepth_core/stages/denoise.py",
        "start_latents = noise.expand(rgb.shape[0], -1, -1, -1)",
        "start_latents = torch.randn_like(noise.expand(rgb.shape[0], -1, -1, -1))",
        ("tests/stages/test_denoise.py", "tests/test_e2e_golden.py::test_short_still_clip_equals_one_frame"),
    ),
    Mutation(
        "merge-ignores-shifts", "the merge applies scales but not shifts",
        "rollingdepth_core/coalign/merge.py",
        "aligned = values * scales + shifts",
        "aligned = values * scales",
        ("tests/coalign/test_merge.py", "tests/coalign/test_coalign.py"),
    ),
    Mutation(
        "normalise-per-frame", "the co-aligned video is shifted per frame, not per clip",
        "rollingdepth_core/coalign/merge.py",
        "shifted = depth - depth.min()",
        "shifted = depth - depth.amin((1, 2), keepdim=True)",
        ("tests/coalign/test_coalign.py",),
    ),
    Mutation(
        "cap-off-by-one", "dilation cap int(N / n) instead of int(N / n) - 1",
        "rollingdepth_core/stages/snippets.py",
        "return max(1, int(num_frames / snippet_length) - 1)",
        "return max(1, int(num_frames / snippet_length))",
        ("tests/stages/test_snippets.py",),
    ),
    Mutation(
        "pad-with-zeros", "odd sizes padded with zeros instead of the edge",
        "rollingdepth_core/io/frames.py",
        'return F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")',
        'return F.pad(images, (0, pad_w, 0, pad_h), mode="constant")',
        ("tests/test_e2e_golden.py::test_odd_size_processing_and_restore", "tests/io/test_frames.py"),
    ),
    Mutation(
        "node-coalign-drops-depth-weight", "the Co-align node drops its depth_term_weight widget",
        "nodes/coalign.py",
        "depth_term_weight=depth_term_weight, ",
        "",
        ("tests/nodes/test_widget_effects.py::test_coalign_widgets",),
    ),
    Mutation(
        "node-refine-drops-cap", "the Refine node drops its cap_dilation widget",
        "nodes/refine.py",
        "cap_dilation=cap_dilation,",
        "",
        ("tests/nodes/test_widget_effects.py::test_refine_widgets",),
    ),
    Mutation(
        "node-denoise-drops-seed", "the Denoise Snippets node ignores its seed",
        "nodes/denoise_snippets.py",
        "processing_resolution=processing_resolution, seed=seed,",
        "processing_resolution=processing_resolution, seed=0,",
        ("tests/nodes/test_widget_effects.py::test_denoise_widgets",),
    ),
    Mutation(
        "bench-reference-decodes-3", "the benchmark's reference style decodes 3 frames per call",
        "rollingdepth_core/bench/reference_style.py",
        "VAE_BATCH = 4  #",
        "VAE_BATCH = 3  #",
        ("tests/bench/test_bench_cli.py::test_speed_smoke_in_process",),
    ),
    Mutation(
        "bench-calibration-untimed", "the benchmark leaves our batch-size calibration out of the total",
        "rollingdepth_core/bench/runner.py",
        """            with clock.stage("batch sizes"):
                batches = resolve_batches(model, config, geo, mode)
""",
        "",
        ("tests/bench/test_bench_cli.py::test_speed_smoke_in_process",),
    ),
    Mutation(
        "flops-per-frame-attention", "the FLOP count runs attention per frame",
        "rollingdepth_core/bench/flops.py",
        'cross_attention_kwargs={"num_frames": snippet_length},',
        'cross_attention_kwargs={"num_frames": 1},',
        ("tests/bench/test_flops.py",),
    ),
)


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def find_golden() -> str | None:
    candidates = [os.environ.get("ROLLINGDEPTH_GOLDEN", "")]
    candidates += [str(folder / "shared" / "golden") for folder in (ROOT, *ROOT.parents)]
    for candidate in candidates:
        if candidate and (Path(candidate) / "tiny_v1" / "model" / "model_index.json").is_file():
            return candidate
    return None


def copy_checkout(target: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the checkout (no .venv, no .git)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
        capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_tests(copy: Path, tests: tuple[str, ...], env: dict, timeout: float) -> tuple[int, str, float]:
    """`(exit code, first failing test or "", seconds)` of pytest on ``tests`` in ``copy``."""
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header",
               "-rf", *tests]
    tic = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out", time.perf_counter() - tic
    lines = done.stdout.splitlines()
    failed = [line.split()[1] for line in lines if line.startswith(("FAILED", "ERROR"))]
    summary = failed[0] if failed else (lines[-1] if lines else "")
    return done.returncode, summary, time.perf_counter() - tic


def check(mutations: tuple[Mutation, ...], timeout: float) -> int:
    golden = find_golden()
    if golden is None:
        sys.stderr.write("Golden data not found: set ROLLINGDEPTH_GOLDEN.\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="rollingdepth-mutation-") as folder:
        copy = Path(folder) / "repo"
        copy_checkout(copy)
        env = dict(os.environ, ROLLINGDEPTH_GOLDEN=golden, PYTHONPATH=str(copy),
                   PYTHONDONTWRITEBYTECODE="1")
        probe = "import rollingdepth_core; print(rollingdepth_core.__file__)"
        where = subprocess.run([sys.executable, "-c", probe], cwd=copy, env=env, capture_output=True,
                               text=True, check=True).stdout.strip()
        if not Path(where).resolve().is_relative_to(copy.resolve()):
            sys.stderr.write(f"The copy's package is not the one imported ({where}).\n")
            return 2
        stale = [m for m in mutations if (copy / m.path).read_text().count(m.old) != 1]
        union = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
        code, first, seconds = run_tests(copy, union, env, timeout * len(mutations))
        say(f"baseline (no mutation): {len(union)} test selections, exit {code}, {seconds:.0f} s")
        if code != 0:
            say(f"The tests fail without any mutation ({first}); fix them first.")
            return 1
        rows = []
        for mutation in mutations:
            path = copy / mutation.path
            original = path.read_text()
            if mutation in stale:
                rows.append((mutation, "STALE", f"text not found exactly once in {mutation.path}", 0.0))
                continue
            path.write_text(original.replace(mutation.old, mutation.new))
            try:
                code, first, seconds = run_tests(copy, mutation.tests, env, timeout)
            finally:
                path.write_text(original)
            verdict = "caught" if code not in (0, 5) else "SURVIVED"  # 5: no tests collected
            rows.append((mutation, verdict, first if verdict == "caught" else "all tests passed", seconds))
            say(f"{mutation.name}: {verdict} ({first}) in {seconds:.0f} s")
    say()
    say("| mutation | what it breaks | result | first red test | seconds |")
    say("|---|---|---|---|---|")
    for mutation, verdict, first, seconds in rows:
        say(f"| `{mutation.name}` | {mutation.what} | {verdict} | `{first}` | {seconds:.0f} |")
    bad = [m.name for m, verdict, _, _ in rows if verdict != "caught"]
    say()
    missed = f"; NOT: {', '.join(bad)}" if bad else ""
    say(f"{len(rows) - len(bad)} of {len(rows)} mutations caught{missed}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated mutation names")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutation's tests")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            say(f"{m.name:34} {m.what}")
        return 0
    chosen = MUTATIONS
    if args.only:
        names = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = names - {m.name for m in MUTATIONS}
        if unknown:
            sys.stderr.write(f"unknown mutation(s): {', '.join(sorted(unknown))}\n")
            return 2
        chosen = tuple(m for m in MUTATIONS if m.name in names)
    return check(chosen, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
