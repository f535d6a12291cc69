"""Arena tab: blind votes between two model slots, a leaderboard, class sessions and CSV export.

Every handler is a few lines over :mod:`summarizer.arena`. Votes live in ``<runs>/arena.sqlite3``
(see :class:`summarizer.arena.ArenaStore`), so a restart mid-class loses nothing.

Endpoints: ``/arena_next`` (-> pair id, dialogue, summaries A and B; model work, on the shared
``MODEL_QUEUE``), ``/arena_vote`` (pair id, vote -> the revealed models), ``/arena_leaderboard``
(scope -> JSON), ``/arena_new_session`` (name -> the new class session), ``/arena_export``
(scope -> CSV file). Votes and reads run on their own queue (``ARENA_QUEUE``), so the
leaderboard never waits behind generation.
"""
from __future__ import annotations

import math
import random
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from summarizer.arena import DB_NAME, ArenaError, ArenaStore, leaderboard, serve_pair
from summarizer.generation import GenerationSettings
from summarizer.models import SLOT_LABELS

from .common import user_errors
from .context import MODEL_QUEUE, Studio

ARENA_QUEUE = "arena-store"  # votes, leaderboard, export: quick SQLite work beside model work
ARENA_CONCURRENCY = 8  # SQLite serialises writes itself (busy_timeout); 8 keeps threads few
SCOPES = {"current": "current class session", "all": "all sessions"}
VOTE_BUTTONS = (("A is better", "A"), ("B is better", "B"), ("Tie", "tie"), ("Both bad", "both bad"))
BOARD_COLUMNS = ("model", "source", "votes", "wins", "losses", "ties", "both bad", "win rate % (95% CI)",
                 "rating (95% CI)")


def session_of(request: gr.Request | None) -> str:
    """The browser (or gradio_client) session that served/votes: Gradio's ``session_hash``."""
    return getattr(request, "session_hash", None) or "no-session"


def check_scope(scope) -> str:
    """``"current"`` or ``"all"``; else :class:`ArenaError` naming ``scope``."""
    if not isinstance(scope, str) or scope not in SCOPES:
        raise ArenaError(f"scope must be one of {', '.join(repr(s) for s in SCOPES)}; got {str(scope)[:20]!r}.")
    return scope


def board_data(store: ArenaStore, scope: str) -> dict:
    """The :func:`summarizer.arena.leaderboard` of the chosen votes, with the class session."""
    klass = store.current_class()
    votes = store.votes(klass["id"] if check_scope(scope) == "current" else None)
    return {**leaderboard(votes), "class_session": klass, "scope": scope}


def board_frame(data: dict) -> pd.DataFrame:
    """The leaderboard as a table of text cells (numbers rounded for reading)."""
    def ci(mid, low, high, fmt):
        return "–" if math.isnan(mid) else f"{fmt(mid)} ({fmt(low)}–{fmt(high)})"

    rows = [[SLOT_LABELS.get(r["model"], r["model"]), r["source"], r["votes"], r["wins"], r["losses"], r["ties"],
             r["both_bad"], ci(r["win_rate"], r["win_rate_low"], r["win_rate_high"], lambda x: f"{100 * x:.0f}"),
             ci(r["rating"], r["rating_low"], r["rating_high"], lambda x: f"{x:.0f}")] for r in data["rows"]]
    return pd.DataFrame(rows, columns=list(BOARD_COLUMNS))


def board_caption(data: dict) -> str:
    """One paragraph: class session, vote count, method (no user text: names are shown in a table)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(data["class_session"]["started_at"]))
    extra = (" Some model never won or never lost, so one virtual tie per pair that met keeps the "
             "ratings finite." if data["regularized"] else "")
    return (f"**{data['n_votes']} votes** ({SCOPES[data['scope']]}; this class session started {when}). "
            f"{data['method']}{extra}")


def reveal_text(result: dict) -> str:
    """The line shown after a vote: what the student chose and which model wrote A and B."""
    chose = {"A": "A is better", "B": "B is better", "tie": "a tie", "both bad": "both bad"}[result["vote"]]
    return (f"You chose: {chose}. A was {SLOT_LABELS[result['model_a']]} ({result['source_a']}); "
            f"B was {SLOT_LABELS[result['model_b']]} ({result['source_b']}).")


def build(studio: Studio) -> dict:
    """Build the Arena tab inside the current ``gr.Blocks``; wires its own page-load refresh.

    Returns ``{"store": ArenaStore, "refresh": fn}`` (the store for tests and the lead).
    """
    store = ArenaStore(Path(studio.runs_dir) / DB_NAME)
    rng = random.SystemRandom()  # which dialogue, which two models, which goes first
    settings = GenerationSettings()  # greedy, as Compare

    gr.Markdown("Blind test: read the dialogue and the two summaries, then vote. The model names "
                "appear only after your vote, and the next pair comes at once. Each pair takes one vote.")
    status = gr.Markdown(elem_id="arena-status")
    dialogue = gr.Textbox(label="Dialogue", lines=8, max_lines=14, interactive=False, elem_id="arena-dialogue")
    with gr.Row():
        summary_a = gr.Textbox(label="Summary A", lines=4, interactive=False, elem_id="arena-summary-a")
        summary_b = gr.Textbox(label="Summary B", lines=4, interactive=False, elem_id="arena-summary-b")
    with gr.Row():
        buttons = [gr.Button(label, interactive=False, elem_id=f"arena-vote-{value.replace(' ', '-').lower()}")
                   for label, value in VOTE_BUTTONS]
    with gr.Row():
        next_btn = gr.Button("New pair (skip)", variant="primary", elem_id="arena-next", scale=0)
        reveal = gr.Textbox(label="Your last vote", interactive=False, elem_id="arena-reveal", scale=4)
    pair_id = gr.State("")
    with gr.Accordion("Leaderboard and class session (teacher)", open=True):
        # A dropdown that takes any value, so that /arena_export's refusal of a bad scope is ours
        # (naming the field), not the component's generic "not in the list of choices".
        scope = gr.Dropdown([(label, key) for key, label in SCOPES.items()], value="current", label="Votes counted",
                            allow_custom_value=True, elem_id="arena-scope")
        caption = gr.Markdown(elem_id="arena-caption")
        board = gr.Dataframe(headers=list(BOARD_COLUMNS), interactive=False, wrap=True, elem_id="arena-board")
        with gr.Row():
            refresh_btn = gr.Button("Refresh leaderboard", elem_id="arena-refresh")
            class_name = gr.Textbox(label="New class session name (optional)", max_length=100,
                                    elem_id="arena-class-name")
            new_class_btn = gr.Button("Start a new class session", variant="stop", elem_id="arena-new-session")
        with gr.Row():
            export_btn = gr.Button("Export votes (CSV)", elem_id="arena-export")
            export_file = gr.File(label="Votes CSV", interactive=False, elem_id="arena-export-file")

    # ---- handlers ----------------------------------------------------------------------
    def arena_next(request: gr.Request) -> dict:
        """A new blind pair for this session: pair_id, dialogue_id, dialogue, summary_a, summary_b.

        Raises an error saying how to fill a slot when fewer than two model slots are filled.
        """
        with user_errors():
            pair = serve_pair(store, studio.slots, studio.split("test"), session_of(request), rng, settings,
                              studio.max_input_tokens)
        return pair.public()

    def show_next(request: gr.Request):
        """Reads nothing; updates the pair id, dialogue, both summaries, the status and the buttons."""
        try:
            pair = arena_next(request)
        except gr.Error as err:  # fewer than two slots: say how to fill one, keep the page usable
            return ("", "", "", "", f"**{err.message}**", *[gr.Button(interactive=False)] * len(buttons))
        return (pair["pair_id"], pair["dialogue"], pair["summary_a"], pair["summary_b"],
                "Which summary is better?", *[gr.Button(interactive=True)] * len(buttons))

    def arena_vote(pair_id: str, vote: str, request: gr.Request) -> dict:
        """Record a vote (A, B, tie, both bad) on a pair /arena_next served to this session.

        Returns the vote and the models revealed: vote, model_a, source_a, model_b, source_b,
        dialogue_id, class_session. Refuses unknown pair ids, second votes and bad vote values.
        """
        with user_errors():
            return store.vote(pair_id, vote, session_of(request))

    def vote_handler(value: str):
        def vote_clicked(current_pair, request: gr.Request):
            """Reads the shown pair's id; updates the reveal line and disables the vote buttons."""
            if not current_pair:  # gr.State lives in the server: empty before a pair or after a restart
                raise gr.Error("No pair is shown: press New pair, then vote.", print_exception=False)
            result = arena_vote(current_pair, value, request)
            return reveal_text(result), *[gr.Button(interactive=False)] * len(buttons)
        return vote_clicked

    def arena_leaderboard(scope: str = "current") -> dict:
        """Leaderboard of the current class session ("current") or of every vote ("all"): rows with
        model, source, votes, wins, losses, ties, both_bad, win_rate (+ Wilson 95% CI), rating
        (Bradley–Terry, + bootstrap 95% CI); n_votes, class_session, method."""
        with user_errors():
            data = board_data(store, scope)
        return {**data, "rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                                 for r in data["rows"]]}

    def refresh(scope_value):
        """Reads the scope; updates the caption and the leaderboard table."""
        with user_errors():
            data = board_data(store, scope_value)
        return board_caption(data), board_frame(data)

    def arena_new_session(name: str = "") -> dict:
        """Start a new class session: the leaderboard restarts empty, old votes are kept.
        Returns the session's id, name and start time (Unix seconds)."""
        with user_errors():
            return store.new_class(name)

    def new_session_clicked(name, scope_value):
        """Reads the name and scope; updates the caption, table and name box."""
        entry = arena_new_session(name or "")
        gr.Info(f"Started class session {entry['name']!r}; earlier votes are kept (scope: all sessions).")
        return *refresh(scope_value), ""

    def arena_export(scope: str = "current") -> str:
        """Reads the scope; returns the votes as a CSV file (every column of a vote, no summaries)."""
        with user_errors():
            scope = check_scope(scope)
            klass = store.current_class()
            folder = Path(tempfile.mkdtemp(prefix="arena-export-"))
            name = f"arena-votes-{scope}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
            return str(store.export_csv(folder / name, klass["id"] if scope == "current" else None))

    # ---- events ------------------------------------------------------------------------
    pair_outputs = [pair_id, dialogue, summary_a, summary_b, status, *buttons]
    model_work = dict(concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    store_work = dict(concurrency_id=ARENA_QUEUE, concurrency_limit=ARENA_CONCURRENCY)
    next_btn.click(show_next, None, pair_outputs, api_visibility="private", **model_work)
    for button, (_, value) in zip(buttons, VOTE_BUTTONS):
        button.click(vote_handler(value), pair_id, [reveal, *buttons], api_visibility="private", **store_work
                     ).success(show_next, None, pair_outputs, api_visibility="private", **model_work)
    refresh_btn.click(refresh, scope, [caption, board], api_visibility="private", **store_work)
    scope.change(refresh, scope, [caption, board], api_visibility="private", **store_work)
    new_class_btn.click(new_session_clicked, [class_name, scope], [caption, board, class_name],
                        api_visibility="private", **store_work)
    export_btn.click(arena_export, scope, export_file, api_name="arena_export", **store_work)
    gr.api(arena_next, api_name="arena_next", **model_work)
    gr.api(arena_vote, api_name="arena_vote", **store_work)
    gr.api(arena_leaderboard, api_name="arena_leaderboard", **store_work)
    gr.api(arena_new_session, api_name="arena_new_session", **store_work)
    gr.context.Context.root_block.load(refresh, scope, [caption, board], api_visibility="private", **store_work)
    return {"store": store, "refresh": refresh}
