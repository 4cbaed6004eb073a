"""Every key binding of the TUI, in one table, each with an id the config file can remap.

```toml
[keys]
quit = "q,ctrl+c"
cursor_down = "down,j,n"
```
The app applies `[keys]` with `App.set_keymap`; the help screen (`?`) lists ids and current keys.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

from textual.binding import Binding, BindingType
from textual.keys import Keys

from raytui.errors import UsageError


@dataclass(frozen=True)
class KeySpec:
    id: str
    keys: str  # Textual key names, comma-separated
    action: str
    description: str
    where: str  # shown in help: "everywhere", "node list", "tables", "node detail", ...
    show: bool = True
    priority: bool = False
    key_display: str | None = None

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            key_display=self.key_display,
            id=self.id,
        )


KEYS: tuple[KeySpec, ...] = (
    KeySpec("quit", "q", "quit", "Quit", "everywhere"),
    KeySpec("quit_now", "ctrl+c,ctrl+q", "quit", "Quit", "everywhere", show=False, priority=True),
    KeySpec("help", "question_mark", "help", "Help", "everywhere", key_display="?"),
    KeySpec(
        "palette", "colon,ctrl+p", "command_palette", "Commands", "everywhere", key_display=":"
    ),
    KeySpec("refresh", "r", "refresh", "Refresh", "everywhere", show=False),
    KeySpec("view_nodes", "1", "switch_view('nodes')", "Nodes", "cluster view"),
    KeySpec("view_gpus", "2", "switch_view('gpus')", "GPUs", "cluster view"),
    KeySpec("view_jobs", "3", "switch_view('jobs')", "Jobs", "cluster view"),
    KeySpec("view_tasks", "4", "switch_view('tasks')", "Tasks", "cluster view"),
    KeySpec("view_actors", "5", "switch_view('actors')", "Actors", "cluster view"),
    KeySpec("filter", "slash", "filter", "Filter", "cluster view", key_display="/"),
    KeySpec(
        "back",
        "escape",
        "back",
        "Back",
        "screens and dialogs",
        show=False,
    ),
    KeySpec("cursor_down", "down,j", "cursor_down", "Down", "tables", show=False),
    KeySpec("cursor_up", "up,k", "cursor_up", "Up", "tables", show=False),
    KeySpec("page_down", "pagedown,ctrl+f", "page_down", "Page down", "tables", show=False),
    KeySpec("page_up", "pageup,ctrl+b", "page_up", "Page up", "tables", show=False),
    KeySpec("first", "home,g", "first", "First row", "tables", show=False),
    KeySpec("last", "end", "last", "Last row", "tables", show=False),
    KeySpec(
        "select", "enter", "select", "Details", "node list, GPU list, job list", key_display="⏎"
    ),
    KeySpec("probe", "p", "probe", "Probe NVML", "node detail"),
    KeySpec("node_logs", "L", "node_logs", "Node logs", "node detail"),
    KeySpec("node_row_log", "l", "row_log", "Worker log", "node detail"),
    KeySpec("node_tab", "t", "next_tab", "Next tab", "node detail"),
    KeySpec("composer", "c", "open_composer", "Prompt", "everywhere"),
    KeySpec("history", "h", "open_history", "History", "everywhere"),
    KeySpec("engines", "v", "open_engines", "vLLM engines", "everywhere", show=False),
    KeySpec("engine_stop", "d,delete", "stop_engine", "Stop engine", "vLLM engines"),
    KeySpec("prompt_submit", "ctrl+s,ctrl+enter", "submit", "Submit", "composer", key_display="^s"),
    KeySpec("prompt_cancel", "escape", "cancel_or_back", "Cancel / back", "composer"),
    KeySpec("prompt_models", "ctrl+l", "load_models", "Models", "composer", key_display="^l"),
    KeySpec("prompt_pull", "ctrl+o", "pull_model", "Pull model", "composer", key_display="^o"),
    KeySpec("copy_answer", "y", "copy_answer", "Copy answer", "answer pane, history"),
    KeySpec("history_search", "slash", "search", "Search", "history", key_display="/"),
    KeySpec("history_open", "enter", "open_run", "Full text", "history", key_display="⏎"),
    KeySpec("history_resend", "e", "resend", "Re-send", "history, run detail"),
    KeySpec("toggle_peers", "p", "toggle_peers", "Peers", "cluster view"),
    KeySpec("add_peer", "a", "add_peer", "Add peer", "peers sidebar shown"),
    KeySpec("remove_peer", "d,delete", "remove_peer", "Remove peer", "peers sidebar"),
    KeySpec("overlay_details", "o", "overlay_details", "Overlay", "peers sidebar"),
    KeySpec("start_proxy", "P", "start_proxy", "Start proxy", "peers sidebar shown"),
    KeySpec("log_follow", "f", "follow", "Follow", "log view"),
    KeySpec("log_pause", "p", "pause", "Pause", "log view"),
    KeySpec("log_search", "slash", "search", "Search", "log view", key_display="/"),
    KeySpec("log_next", "n", "next_match", "Next match", "log view"),
    KeySpec("log_prev", "N", "previous_match", "Previous match", "log view"),
    KeySpec("log_top", "home,g", "top", "Start", "log view", show=False),
    KeySpec("log_end", "end,G", "end", "End (follow)", "log view", show=False),
    KeySpec("log_wrap", "w", "toggle_wrap", "Wrap", "log view"),
    KeySpec("log_save", "s", "save", "Save", "log view"),
    KeySpec("log_up", "up,k", "scroll_up", "Up", "log view", show=False),
    KeySpec("log_down", "down,j", "scroll_down", "Down", "log view", show=False),
    KeySpec("log_page_up", "pageup,ctrl+b", "page_up", "Page up", "log view", show=False),
    KeySpec("log_page_down", "pagedown,ctrl+f", "page_down", "Page down", "log view", show=False),
    KeySpec("log_left", "left", "scroll_left", "Left", "log view", show=False),
    KeySpec("log_right", "right", "scroll_right", "Right", "log view", show=False),
    KeySpec(
        "workbench_logs", "l", "open_logs", "Logs", "actors, task list, task detail, actor detail"
    ),
    KeySpec("actor_kill", "K", "kill_actor", "Kill actor", "actors, actor detail"),
    KeySpec("job_submit", "n", "app.open_job_submit", "Submit job", "job list"),
    KeySpec("job_send", "ctrl+s", "submit", "Submit", "job submit dialog", key_display="^s"),
    KeySpec("job_stop", "x", "stop_job", "Stop job", "job detail"),
    KeySpec("job_delete", "D", "delete_job", "Delete job", "job detail"),
    KeySpec("confirm_yes", "y,enter", "confirm", "Yes", "confirmations", key_display="y"),
    KeySpec("confirm_no", "n,escape", "cancel", "No", "confirmations", key_display="n"),
)

BY_ID: Mapping[str, KeySpec] = {k.id: k for k in KEYS}


def bindings(*ids: str) -> list[BindingType]:
    return [BY_ID[i].binding() for i in ids]


def app_bindings(*ids: str) -> list[BindingType]:
    """The same bindings, acting on the app: for modal screens, which hide the app's bindings."""
    return [replace(BY_ID[i].binding(), action=f"app.{BY_ID[i].action}") for i in ids]


def split_keymap(keymap: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The known ids of a config `[keys]` table, and the unknown ones (reported to the user)."""
    known = {k: v for k, v in keymap.items() if k in BY_ID and v.strip()}
    unknown = sorted(k for k in keymap if k not in BY_ID)
    return known, unknown


_MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
_NAMED = frozenset(
    k.value.split("+")[-1] for k in Keys if not k.value.startswith("<") and "-" not in k.value
)


def _key_name(key: str) -> str | None:
    """The canonical name of one key as Textual writes it (`?` -> `question_mark`), or None
    when Textual has no such key (`ctrl+`, `shift+foo`, `qq`)."""
    *mods, base = key.split("+")
    if any(m not in _MODIFIERS for m in mods) or len(set(mods)) != len(mods):
        return None
    if len(base) == 1:
        if not base.isprintable() or base.isspace():
            return None
        if not base.isalnum():
            try:
                base = unicodedata.name(base).lower().replace("-", "_").replace(" ", "_")
            except ValueError:
                return None
    elif base not in _NAMED:
        try:
            unicodedata.lookup(base.replace("_", " "))
        except KeyError:
            return None
    return "+".join([*sorted(mods), base])


def _contexts(spec: KeySpec) -> set[str]:
    return {w.strip().removesuffix(" shown") for w in spec.where.split(",")}


def _overlap(a: KeySpec, b: KeySpec) -> bool:
    ca, cb = _contexts(a), _contexts(b)
    return "everywhere" in ca or "everywhere" in cb or bool(ca & cb)


def check_keymap(keymap: Mapping[str, str], where: str = "[keys]") -> None:
    """Refuse a `[keys]` table Textual would take silently but that cannot work: a key name
    Textual does not know, or one key bound to two actions that are live at the same time
    (`refresh = "q"` next to quit: `q` would do only one of them). UsageError naming both."""
    known, _unknown = split_keymap(keymap)
    for binding_id, keys in known.items():
        for key in keys.split(","):
            if _key_name(key.strip()) is None:
                raise UsageError(
                    f"{where} {binding_id} = {keys!r}: {key.strip()!r} is not a key name "
                    "(examples: q, ctrl+r, f5, escape, enter, question_mark; see ? in raytui)"
                )
    effective = current_keys(known)
    owners: dict[str, list[KeySpec]] = {}
    for spec in KEYS:
        for name in {_key_name(k.strip()) for k in effective[spec.id].split(",") if k.strip()}:
            if name is not None:
                owners.setdefault(name, []).append(spec)
    for name, specs in owners.items():
        for i, a in enumerate(specs):
            for b in specs[i + 1 :]:
                if a.action == b.action or not (a.id in known or b.id in known):
                    continue
                if _overlap(a, b):
                    view = b.where if "everywhere" in _contexts(a) else a.where
                    raise UsageError(
                        f"{where}: {name!r} is bound to both {a.id} ({a.description}) and "
                        f"{b.id} ({b.description}), both active in: {view}; give one of them "
                        "another key"
                    )


def current_keys(keymap: Mapping[str, str]) -> dict[str, str]:
    """Binding id -> the keys in effect after the config's remaps."""
    return {k.id: keymap.get(k.id, k.keys) for k in KEYS}


def display_keys(keys: str) -> str:
    names = {"question_mark": "?", "colon": ":", "slash": "/", "escape": "esc", "enter": "⏎"}
    return " ".join(names.get(k.strip(), k.strip()) for k in keys.split(",") if k.strip())
