"""Drive a real terminal program in tmux: start it, read the screen, type keys, see it exit."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping


class TmuxSession:
    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        width: int = 120,
        height: int = 36,
    ) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (scripts/test installs it)")
        self.name = f"raytui-e2e-{uuid.uuid4().hex[:8]}"
        # `env` as the first word passes the environment explicitly; no shell parses user text.
        command = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
        # Its own tmux server (-L): a session never lands on a server that another test's last
        # session is just shutting down ("server exited unexpectedly").
        subprocess.run(
            [
                "tmux",
                "-L",
                self.name,
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                shlex.join(command),
            ],
            check=True,
        )
        self._tmux("set-option", "-t", self.name, "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.name, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def paste(self, text: str) -> None:
        """Paste `text` as a terminal would (bracketed paste when the program asked for it),
        not as keystrokes."""
        buffer = f"{self.name}-paste"
        self._tmux("set-buffer", "-b", buffer, "--", text)
        self._tmux("paste-buffer", "-p", "-d", "-b", buffer, "-t", self.name)

    def cursor_row(self) -> int:
        """The terminal cursor's row (Textual puts it in the focused input)."""
        return int(self._tmux("display-message", "-p", "-t", self.name, "#{cursor_y}").strip())

    def pane_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").strip())

    def exit_status(self) -> int | None:
        """The program's exit status once it ended, else None."""
        out = self._tmux(
            "display-message", "-p", "-t", self.name, "#{pane_dead} #{pane_dead_status}"
        ).split()
        if out and out[0] == "1":
            return int(out[1]) if len(out) > 1 and out[1] else 0
        return None

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; screen:\n{screen}")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.screen()}")

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.exit_status()
            if status is not None:
                return status
            time.sleep(0.2)
        raise AssertionError(f"program still running after {timeout}s:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True, check=False)
