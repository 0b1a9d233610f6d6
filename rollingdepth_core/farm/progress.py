"""What the farm prints: a line per finished shot (stdout) and an overall bar (stderr):
shots done of the total, frames so far and frames per second."""

from __future__ import annotations

import sys
import time

from .manifest import ShotRecord


class FarmProgress:
    """Progress of one farm run.

    Args:
        total: shots in the run (skipped ones included).
        show_bar: draw the overall bar (off with ``-q``).
        stream: where the per-shot lines go.
    """

    def __init__(self, total: int, show_bar: bool = True, stream=None):
        from tqdm.auto import tqdm

        self.total = total
        self.finished = 0
        self.frames = 0
        self.stream = stream or sys.stdout
        self.started = time.perf_counter()
        self.bar = tqdm(total=total, desc="shots", unit="shot", disable=not show_bar, dynamic_ncols=True,
                        file=sys.stderr)

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(time.perf_counter() - self.started, 1e-9)

    def line(self, text: str) -> None:
        """Print one line above the bar."""
        self.bar.write(text, file=self.stream)

    def shot_finished(self, record: ShotRecord) -> None:
        """Count a shot's outcome, print its line and move the bar."""
        self.finished += 1
        where = f"[{self.finished:{len(str(self.total))}d}/{self.total}]"
        if record.status == "done":
            self.frames += record.frames
            rate = record.frames / max(record.seconds, 1e-9)
            retry = f", attempt {record.attempts}" if record.attempts > 1 else ""
            self.line(f"{where} done    {record.shot}: {record.frames} frames in {record.seconds:.1f} s "
                      f"({rate:.2f} frames/s) on {record.worker}{retry}")
        elif record.status == "skipped":
            self.line(f"{where} skipped {record.shot}: done before with the same settings")
        else:
            on = f" (on {record.worker})" if record.worker else ""
            self.line(f"{where} FAILED  {record.shot}: {record.error}{on}")
        rate = self.frames_per_second
        self.bar.set_postfix_str(f"{self.frames} frames, {rate:.2f} frames/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> FarmProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summary_line(records: list[ShotRecord], seconds: float, manifest_path) -> str:
    """The run's last line: how many shots were done, skipped and failed, frames and speed."""
    count = {status: sum(r.status == status for r in records) for status in ("done", "skipped", "failed")}
    frames = sum(r.frames for r in records if r.status == "done")
    failed = [r.shot for r in records if r.status == "failed"]
    rate = frames / max(seconds, 1e-9)
    text = (f"farm: {count['done']} done, {count['skipped']} skipped, {count['failed']} failed of "
            f"{len(records)} shots; {frames} frames in {seconds:.1f} s ({rate:.2f} frames/s); "
            f"manifest {manifest_path}")
    if failed:
        shown = ", ".join(failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        text += f"; failed: {shown}"
    return text
