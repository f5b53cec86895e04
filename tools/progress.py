"""A progress bar on stderr for long tool runs (rich), silent when stderr is not a terminal so that
scripts and logs get only the final line."""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._progress = progress
        self._task = task

    def advance(self, n: int, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **fields)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[_Bar]:
    console = Console(stderr=True)
    if not console.is_terminal:
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("copied {task.fields[copied]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, copied=0)
        yield _Bar(progress, task)
