"""Arena tab: blind votes between two model slots, a leaderboard, class sessions and CSV export.

Every handler is a few lines over :mod:`summarizer.arena`. Votes live in ``<runs>/arena.sqlite3``
(see :class:`summarizer.arena.ArenaStore`), so a restart mid-class loses nothing.

Endpoints: ``/arena_next`` (-> pair id, dialogue, summaries A and B; model work, on the shared
``GENERATION_QUEUE``: batched with other sessions' requests), ``/arena_vote`` (pair id, vote -> the revealed models),
``/arena_rate`` (pair id, side, four 1–5 scores -> the stored rating), ``/arena_leaderboard``
(scope -> JSON, votes, ratings and the raters' agreement), ``/arena_new_session`` (name -> the new class
session), ``/arena_export`` (scope -> two CSV files: votes, ratings), ``/arena_start_round`` (N -> a
same-pairs round: every student gets the same N pairs; model work) and ``/arena_end_round``. Votes, ratings and reads run on their own queue
(``ARENA_QUEUE``), so the leaderboard never waits behind generation.

Ratings are given in the tab under each summary of the shown pair, before the vote (blind: the
models are not yet named); an API client may also rate after the vote (stored ``blind`` = 0).
"""
from __future__ import annotations

import math
import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from summarizer.arena.agreement import agreement
from summarizer.arena.leaderboard import leaderboard, rating_table
from summarizer.arena.rounds import (DEFAULT_ROUND_PAIRS, MAX_ROUND_PAIRS, SamePairsRounds, make_items, next_pair,
                                     rater_key)
from summarizer.arena.store import CRITERIA, CRITERION_HELP, SCORES, SIDES, ArenaError, ArenaStore, DB_NAME
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import SLOT_LABELS

from ui.access import for_students, teacher_only
from ui.common import user_errors
from ui.context import GENERATION_CONCURRENCY, GENERATION_QUEUE, Studio

ARENA_QUEUE = "arena-store"  # votes, leaderboard, export: quick SQLite work beside model work
ARENA_CONCURRENCY = 8  # SQLite serialises writes itself (busy_timeout); 8 keeps threads few
TEACHER_CONTROLS = ("class_name", "new_class", "export", "file", "round_pairs", "start_round", "end_round")
SCOPES = {"current": "current class session", "all": "all sessions"}
VOTE_BUTTONS = (("A is better", "A"), ("B is better", "B"), ("Tie", "tie"), ("Both bad", "both bad"))
BOARD_COLUMNS = ("model", "source", "votes", "wins", "losses", "ties", "both bad", "win rate % (95% CI)",
                 "rating (95% CI)")
CRITERION_LABELS = {"relevance": "Relevance", "coherence": "Coherence", "fluency": "Fluency",
                    "consistency": "Says only what the dialogue says"}
RATING_COLUMNS = ("model", "source", "ratings", *(f"{CRITERION_LABELS[c].lower()} 1–5 (95% CI)" for c in CRITERIA))
AGREEMENT_COLUMNS = ("judged", "statistic", "value (95% CI)", "pairs or summaries judged by 2+", "judgements",
                     "raters", "reading")


def session_of(request: gr.Request | None) -> str:
    """The browser (or gradio_client) session that asks: Gradio's ``session_hash`` (recorded; it
    decides whose pair it is only when the app has no logins)."""
    return getattr(request, "session_hash", None) or "no-session"


def login_of(request: gr.Request | None) -> str:
    """The login that asks (``gr.Request.username``), ``""`` when the app has no logins: with
    logins, a pair, its vote and its ratings belong to the login, whatever session id is sent."""
    return getattr(request, "username", None) or ""


def check_scope(scope) -> str:
    """``"current"`` or ``"all"``; else :class:`ArenaError` naming ``scope``."""
    if not isinstance(scope, str) or scope not in SCOPES:
        raise ArenaError(f"scope must be one of {', '.join(repr(s) for s in SCOPES)}; got {str(scope)[:20]!r}.")
    return scope


def board_data(store: ArenaStore, scope: str, rounds: SamePairsRounds | None = None) -> dict:
    """The :func:`summarizer.arena.leaderboard` of the chosen votes, the ratings, the raters'
    :func:`~summarizer.arena.agreement.agreement`, the class session and the open round (counts only)."""
    klass = store.current_class()
    chosen = klass["id"] if check_scope(scope) == "current" else None
    votes, ratings = store.votes(chosen), store.ratings(chosen)
    # Summaries of every pair: a vote counts in the session current when cast, its pair may be older.
    return {**leaderboard(votes), "ratings": rating_table(ratings),
            "agreement": agreement(votes, ratings, store.summaries()),
            "round": round_summary(rounds.active() if rounds is not None else None),
            "class_session": klass, "scope": scope}


def round_summary(active: dict | None) -> dict | None:
    """The open round as everyone may see it: id, n_pairs, started_at, raters (voted on one or more
    of its pairs), finished (voted on all); no logins."""
    if active is None:
        return None
    done = active["voted"].values()
    return {"id": active["id"], "n_pairs": active["n_pairs"], "started_at": active["started_at"],
            "raters": len(done), "finished": sum(1 for n in done if n >= active["n_pairs"])}


def agreement_frame(data: dict) -> pd.DataFrame:
    """The agreement table: per vote statistic and rating criterion its value (95% CI), counts, reading."""
    def cell(row):
        if math.isnan(row["value"]):
            return "–"
        fmt = (lambda x: f"{100 * x:.0f}%") if row["statistic"] == "percent agreement" else (lambda x: f"{x:.2f}")
        if math.isnan(row["low"]):
            return f"{fmt(row['value'])} (n too small)"
        return f"{fmt(row['value'])} ({fmt(row['low'])} to {fmt(row['high'])})"

    rows = [["votes" if r["measure"] == "votes" else CRITERION_LABELS[r["measure"]], r["statistic"], cell(r),
             r["units"], r["judgements"], r["raters"], r["reading"]] for r in data["agreement"]["rows"]]
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


def round_text(data: dict) -> str:
    """One line on the same-pairs round: open (pairs, how many students voted on all) or none."""
    r = data["round"]
    if r is None:
        return "No same-pairs round is open: each *New pair* is a random one."
    return (f"**Same pairs for everyone**: a round of {r['n_pairs']} pairs is open; {r['raters']} students have "
            f"voted on its pairs, {r['finished']} on all of them. *End the round* brings random pairs back.")


def board_frame(data: dict) -> pd.DataFrame:
    """The leaderboard as a table of text cells (numbers rounded for reading)."""
    def ci(mid, low, high, fmt):
        return "–" if math.isnan(mid) else f"{fmt(mid)} ({fmt(low)}–{fmt(high)})"

    rows = [[SLOT_LABELS.get(r["model"], r["model"]), r["source"], r["votes"], r["wins"], r["losses"], r["ties"],
             r["both_bad"], ci(r["win_rate"], r["win_rate_low"], r["win_rate_high"], lambda x: f"{100 * x:.0f}"),
             ci(r["rating"], r["rating_low"], r["rating_high"], lambda x: f"{x:.0f}")] for r in data["rows"]]
    return pd.DataFrame(rows, columns=list(BOARD_COLUMNS))


def ratings_frame(data: dict) -> pd.DataFrame:
    """The ratings table: per model its number of ratings and each criterion's mean (95% t-interval)."""
    def cell(row, c):
        if math.isnan(row[f"{c}_low"]):
            return f"{row[c]:.1f} (n too small)"
        return f"{row[c]:.1f} ({row[f'{c}_low']:.1f}–{row[f'{c}_high']:.1f})"

    rows = [[SLOT_LABELS.get(r["model"], r["model"]), r["source"], r["ratings"], *(cell(r, c) for c in CRITERIA)]
            for r in data["ratings"]["rows"]]
    return pd.DataFrame(rows, columns=list(RATING_COLUMNS))


def session_started(started_at: float, app_started: float | None = None) -> str:
    """When the class session started, on the server's clock (local time, with the date), and,
    for a session older than this app process (the store keeps the last one across restarts),
    that it is an earlier class's: "2026-12-06 12:02, before this app started: press *Start a new
    class session* for today's class"."""
    import psutil

    app_started = psutil.Process().create_time() if app_started is None else app_started
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started_at))
    if started_at >= app_started:
        return when
    return f"{when}, before this app started: press *Start a new class session* for today's class"


def board_caption(data: dict) -> str:
    """One paragraph: class session, vote count, method (no user text: names are shown in a table)."""
    when = session_started(data["class_session"]["started_at"])
    extra = (" Some model never won or never lost, so one virtual tie per pair that met keeps the "
             "ratings finite." if data["regularized"] else "")
    return (f"**{data['n_votes']} votes, {data['ratings']['n_ratings']} ratings** ({SCOPES[data['scope']]}; "
            f"this class session started {when}). {data['method']}{extra} {data['ratings']['method']} "
            f"**Agreement.** {data['agreement']['method']}")


def round_progress(rounds: SamePairsRounds, request: gr.Request | None) -> str:
    """"Same pairs for everyone: you have voted on k of N pairs. " during a round, else ""."""
    active = rounds.active()
    if active is None:
        return ""
    done = active["voted"].get(rater_key(session_of(request), login_of(request)), 0)
    return f"Same pairs for everyone: you have voted on {done} of {active['n_pairs']} pairs. "


def reveal_text(result: dict) -> str:
    """The line shown after a vote: what the student chose and which model wrote A and B."""
    chose = {"A": "A is better", "B": "B is better", "tie": "a tie", "both bad": "both bad"}[result["vote"]]
    return (f"You chose: {chose}. A was {SLOT_LABELS[result['model_a']]} ({result['source_a']}); "
            f"B was {SLOT_LABELS[result['model_b']]} ({result['source_b']}).")


class ArenaEndpoints:
    """The six named endpoints over one :class:`ArenaStore`; method names are the API and MCP names.

    Args:
        studio: the app's shared state (slots, DialogSum, runs folder).
        store: the vote store (default: ``<runs>/arena.sqlite3``).
    """

    def __init__(self, studio: Studio, store: ArenaStore | None = None):
        self.studio = studio
        self._store = store
        self._rounds: SamePairsRounds | None = None
        self._store_lock = threading.Lock()
        self.rng = random.SystemRandom()  # which dialogue, which two models, which goes first
        self.settings = GenerationSettings()  # greedy, 200 new tokens at most, as Compare

    @property
    def store(self) -> ArenaStore:
        """The vote store, opened on first use, so an unusable runs folder never stops the app.

        Raises:
            gr.Error: the database cannot be created or opened; says which folder to fix.
        """
        with self._store_lock:
            if self._store is None:
                path = Path(self.studio.runs_dir) / DB_NAME
                try:
                    self._store = ArenaStore(path)
                except (OSError, sqlite3.Error) as err:
                    raise gr.Error(f"The Arena keeps its votes in {path}, which cannot be opened ({err}). "
                                   "Start the app with --runs-dir pointing at a writable folder.",
                                   print_exception=False) from err
            return self._store

    @property
    def rounds(self) -> SamePairsRounds:
        """The same-pairs rounds in the store's file (tables added on first use)."""
        store = self.store
        with self._store_lock:
            if self._rounds is None:
                self._rounds = SamePairsRounds(store)
            return self._rounds

    @for_students
    def arena_next(self, request: gr.Request) -> dict:
        """A new blind pair for this session: pair_id, dialogue_id, dialogue, summary_a, summary_b
        (no model names); during a same-pairs round, the round's next pair for this login. Refused,
        saying how to fill a slot, when fewer than two slots are filled, and once this login has
        voted on every pair of the round."""
        studio = self.studio
        with studio.limit.admit(request), user_errors():
            pair = next_pair(self.rounds, studio.slots, studio.split("test"), session_of(request), self.rng,
                             self.settings, studio.max_input_tokens, login=login_of(request))
        return pair.public()

    @for_students
    def arena_vote(self, pair_id: str, vote: str, request: gr.Request) -> dict:
        """Record a vote ("A", "B", "tie", "both bad") on a pair /arena_next served to this session.

        Returns the vote and the models revealed: vote, model_a, source_a, model_b, source_b,
        dialogue_id, class_session. Refuses unknown pair ids, second votes and bad vote values.
        """
        with user_errors():
            return self.store.vote(pair_id, vote, session_of(request), login_of(request))

    @for_students
    def arena_rate(self, pair_id: str, side: str, relevance: int, coherence: int, fluency: int,
                   consistency: int, request: gr.Request) -> dict:
        """Rate summary "A" or "B" of a pair /arena_next served to this session, each criterion a whole
        number 1 (worst) to 5 (best): relevance, coherence, fluency, consistency (5 = states nothing
        the dialogue does not say). One rating per summary; before or after the pair's vote.

        Returns rating_id, pair_id, side, dialogue_id, the four scores, blind (true when the pair
        was not yet voted on) and class_session; no model name. Refuses unknown pairs, second
        ratings and scores outside 1..5, naming the field.
        """
        scores = {"relevance": relevance, "coherence": coherence, "fluency": fluency, "consistency": consistency}
        with user_errors():
            return self.store.rate(pair_id, side, scores, session_of(request), login_of(request))

    @for_students
    def arena_leaderboard(self, scope: str = "current") -> dict:
        """Leaderboard of the current class session ("current") or of every vote ("all"): rows with
        model, source, votes, wins, losses, ties, both_bad, win_rate (+ Wilson 95% CI), rating
        (Bradley–Terry, + bootstrap 95% CI); n_votes, class_session, method; ratings: rows with
        model, source, ratings (n), per criterion its mean and <criterion>_low/_high (95% t-interval,
        null below 2 ratings), n_ratings, criteria, method; agreement: rows (votes' percent agreement and
        nominal alpha, each criterion's ordinal alpha: value, low/high bootstrap 95%, units, judgements,
        raters, repeats, reading) and method; round: the open same-pairs round (n_pairs, raters, finished)
        or null."""
        with user_errors():
            data = board_data(self.store, scope, self.rounds)
        ratings, agreed = data["ratings"], data["agreement"]
        return {**data, "rows": _json_rows(data["rows"]), "ratings": {**ratings, "rows": _json_rows(ratings["rows"])},
                "agreement": {**agreed, "rows": _json_rows(agreed["rows"])}}

    @teacher_only
    def arena_start_round(self, n_pairs: int = DEFAULT_ROUND_PAIRS) -> dict:
        """Start a same-pairs round: every student is served the same N pairs (1 to 50), in the same order,
        so that their votes and ratings can be compared (agreement on the leaderboard).

        The dialogues, models and both summaries are fixed now, once (model work). Ends any open
        round. Returns id, n_pairs, started_at, raters, finished."""
        studio = self.studio
        with user_errors():
            items = make_items(studio.slots, studio.split("test"), n_pairs, self.rng, self.settings,
                               studio.max_input_tokens)
            return round_summary(self.rounds.start(items))

    @teacher_only
    def arena_end_round(self) -> dict:
        """End the open same-pairs round (random pairs return). Returns {"ended": the round, or null if none was open}."""
        with user_errors():
            return {"ended": round_summary(self.rounds.end())}

    @teacher_only
    def arena_new_session(self, name: str = "") -> dict:
        """Start a new class session: the leaderboard restarts empty, old votes are kept.
        Returns the session's id, name and start time (Unix seconds)."""
        with user_errors():
            return self.store.new_class(name)

    @teacher_only
    def arena_export(self, scope: str = "current") -> list[str]:
        """The votes and the ratings of the current class session ("current") or all ("all") as two
        CSV files, [votes, ratings] (no summaries)."""
        with user_errors():
            scope = check_scope(scope)
            chosen = self.store.current_class()["id"] if scope == "current" else None
            folder = Path(tempfile.mkdtemp(prefix="arena-export-"))
            stamp = f"{scope}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
            return [str(self.store.export_csv(folder / f"arena-votes-{stamp}", chosen)),
                    str(self.store.export_ratings_csv(folder / f"arena-ratings-{stamp}", chosen))]


def _json_rows(rows: list[dict]) -> list[dict]:
    """Rows with ``nan`` as ``None`` (JSON has no NaN)."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def voting_panel() -> dict:
    """The student's view: status line, dialogue, summaries A and B, vote buttons, next, reveal."""
    gr.Markdown("Blind test: read the dialogue and the two summaries, then vote. The model names "
                "appear only after your vote, and the next pair comes at once. Each pair takes one vote.")
    view = {"status": gr.Markdown(elem_id="arena-status"),
            "dialogue": gr.Textbox(label="Dialogue", lines=8, max_lines=14, interactive=False,
                                   elem_id="arena-dialogue")}
    view["scores"], view["rate"] = {}, {}
    with gr.Row():
        for side in SIDES:
            with gr.Column():
                view[f"summary_{side.lower()}"] = gr.Textbox(label=f"Summary {side}", lines=4, interactive=False,
                                                             elem_id=f"arena-summary-{side.lower()}")
                view["scores"][side], view["rate"][side] = rating_controls(side)
    with gr.Row():
        view["buttons"] = [gr.Button(label, interactive=False,
                                     elem_id=f"arena-vote-{value.replace(' ', '-').lower()}")
                           for label, value in VOTE_BUTTONS]
    with gr.Row():
        view["next"] = gr.Button("New pair (skip)", variant="primary", elem_id="arena-next", scale=0)
        view["reveal"] = gr.Textbox(label="Your last vote", interactive=False, elem_id="arena-reveal", scale=4)
    return view


def rating_controls(side: str) -> tuple[list, gr.Button]:
    """Four 1–5 radios (one per criterion) and a Rate button for summary ``side``, still blind."""
    with gr.Accordion(f"Rate summary {side} (optional, before you vote)", open=True):
        radios = [gr.Radio(list(SCORES), value=None, label=CRITERION_LABELS[c], info=CRITERION_HELP[c],
                           elem_id=f"arena-rate-{side.lower()}-{c}") for c in CRITERIA]
        button = gr.Button(f"Rate summary {side}", interactive=False, size="sm", elem_id=f"arena-rate-{side.lower()}")
    return radios, button


def teacher_panel() -> dict:
    """The leaderboard, the ratings and agreement tables, the same-pairs round, the class-session reset
    and the CSV export."""
    view = {}
    with gr.Accordion("Leaderboard and class session (teacher)", open=True):
        # A dropdown that takes any value, so that /arena_export's refusal of a bad scope is ours
        # (naming the field), not the component's generic "not in the list of choices".
        view["scope"] = gr.Dropdown([(label, key) for key, label in SCOPES.items()], value="current",
                                    label="Votes counted", allow_custom_value=True, elem_id="arena-scope")
        view["caption"] = gr.Markdown(elem_id="arena-caption")
        view["board"] = gr.Dataframe(headers=list(BOARD_COLUMNS), interactive=False, wrap=True,
                                     elem_id="arena-board")
        view["ratings"] = gr.Dataframe(headers=list(RATING_COLUMNS), interactive=False, wrap=True,
                                       label="Ratings (mean, 95% CI)", elem_id="arena-ratings")
        view["agreement"] = gr.Dataframe(headers=list(AGREEMENT_COLUMNS), interactive=False, wrap=True,
                                         label="Agreement between raters (Krippendorff's alpha, 95% CI)",
                                         elem_id="arena-agreement")
        view["round"] = gr.Markdown(elem_id="arena-round")
        with gr.Row():
            view["round_pairs"] = gr.Number(DEFAULT_ROUND_PAIRS, label="Pairs in the round", precision=0, minimum=1,
                                            maximum=MAX_ROUND_PAIRS, elem_id="arena-round-pairs")
            view["start_round"] = gr.Button("Same pairs for everyone", variant="primary", elem_id="arena-start-round")
            view["end_round"] = gr.Button("End the round", elem_id="arena-end-round")
        with gr.Row():
            view["refresh"] = gr.Button("Refresh leaderboard", elem_id="arena-refresh")
            view["class_name"] = gr.Textbox(label="New class session name (optional)", max_length=100,
                                            elem_id="arena-class-name")
            view["new_class"] = gr.Button("Start a new class session", variant="stop", elem_id="arena-new-session")
        with gr.Row():
            view["export"] = gr.Button("Export votes and ratings (CSV)", elem_id="arena-export")
            view["file"] = gr.File(label="Votes and ratings CSV", file_count="multiple", interactive=False,
                                   elem_id="arena-export-file")
    return view


def _handlers(api: ArenaEndpoints, n_buttons: int) -> dict:
    """The page's handlers over ``api``: show_next, vote_handler(value), rate_handler(side), refresh,
    on_load, new_session_clicked."""
    # Updates, not new components: gr.Button(...) here would add stray buttons to the page.
    off, on = [gr.update(interactive=False)] * n_buttons, [gr.update(interactive=True)] * n_buttons

    def cleared() -> list:
        """Every rating radio back to unset. New Radio values made at call time (outside the Blocks, so
        no stray component): Gradio 6.31 ignores ``gr.update(value=None)`` on a radio that was an input."""
        return [gr.Radio(value=None) for _ in range(len(SIDES) * len(CRITERIA))]

    def rate_buttons(interactive: bool) -> list:
        return [gr.update(interactive=interactive, value=f"Rate summary {side}") for side in SIDES]

    @for_students
    def show_next(request: gr.Request):
        """Reads nothing; updates the pair id, dialogue, both summaries, the status, the vote buttons,
        the rating radios (cleared) and the Rate buttons."""
        try:
            pair = api.arena_next(request)
        except gr.Error as err:  # e.g. fewer than two slots: say how to fill one, keep the page usable
            return ("", "", "", "", f"**{err.message}**", *off, *cleared(), *rate_buttons(False))
        return (pair["pair_id"], pair["dialogue"], pair["summary_a"], pair["summary_b"],
                f"{round_progress(api.rounds, request)}Which summary is better? You may rate each one first.",
                *on, *cleared(), *rate_buttons(True))

    def rate_handler(side: str):
        @for_students
        def rate_clicked(current_pair, relevance, coherence, fluency, consistency, request: gr.Request):
            """Reads the shown pair's id and the side's four radios; disables that side's Rate button."""
            if not current_pair:
                raise gr.Error("No pair is shown: press New pair, then rate.", print_exception=False)
            missing = [CRITERION_LABELS[c] for c, v in zip(CRITERIA, (relevance, coherence, fluency, consistency))
                       if v is None]
            if missing:
                raise gr.Error(f"Summary {side}: choose 1–5 for {', '.join(missing)}, then Rate.", print_exception=False)
            api.arena_rate(current_pair, side, relevance, coherence, fluency, consistency, request)
            return gr.update(interactive=False, value=f"Summary {side} rated")
        return rate_clicked

    def vote_handler(value: str):
        @for_students
        def vote_clicked(current_pair, request: gr.Request):
            """Reads the shown pair's id; updates the reveal line and disables the vote buttons."""
            if not current_pair:  # gr.State lives in the server: empty before a pair or after a restart
                raise gr.Error("No pair is shown: press New pair, then vote.", print_exception=False)
            return reveal_text(api.arena_vote(current_pair, value, request)), *off
        return vote_clicked

    @for_students
    def refresh(scope_value):
        """Reads the scope; updates the caption, the leaderboard, ratings and agreement tables and the round line."""
        with user_errors():
            data = board_data(api.store, scope_value, api.rounds)
        return board_caption(data), board_frame(data), ratings_frame(data), agreement_frame(data), round_text(data)

    @for_students
    def on_load(scope_value):
        """Page load: the leaderboard, or why the Arena cannot store votes (no error pop-up)."""
        try:
            return refresh(scope_value)
        except gr.Error as err:
            return f"**{err.message}**", *[gr.update()] * 4

    @teacher_only
    def start_round_clicked(n_pairs, scope_value):
        """Reads the number of pairs and the scope; generates the round's pairs; updates the board outputs."""
        entry = api.arena_start_round(n_pairs)
        gr.Info(f"Same pairs for everyone: {entry['n_pairs']} pairs; each student's New pair now serves them in order.")
        return refresh(scope_value)

    @teacher_only
    def end_round_clicked(scope_value):
        """Reads the scope; ends the open round; updates the board outputs."""
        ended = api.arena_end_round()["ended"]
        gr.Info("Round ended: New pair serves random pairs again." if ended else "No same-pairs round was open.")
        return refresh(scope_value)

    @teacher_only
    def new_session_clicked(name, scope_value):
        """Reads the name and scope; updates the caption, table and name box."""
        entry = api.arena_new_session(name or "")
        gr.Info(f"Started class session {entry['name']!r}; earlier votes are kept (scope: all sessions).")
        return *refresh(scope_value), ""

    return {"show_next": show_next, "vote_handler": vote_handler, "rate_handler": rate_handler, "refresh": refresh,
            "on_load": on_load, "new_session_clicked": new_session_clicked, "start_round_clicked": start_round_clicked,
            "end_round_clicked": end_round_clicked}


def _wire(api: ArenaEndpoints, h: dict, vote_view: dict, teacher: dict, pair_id: gr.State) -> dict:
    """Connect the buttons and the named endpoints; returns the page-load hook's arguments."""
    buttons, scores, rate = vote_view["buttons"], vote_view["scores"], vote_view["rate"]
    pair_outputs = [pair_id, *(vote_view[k] for k in ("dialogue", "summary_a", "summary_b", "status")), *buttons,
                    *(radio for side in SIDES for radio in scores[side]), *(rate[side] for side in SIDES)]
    board_outputs = [teacher["caption"], teacher["board"], teacher["ratings"], teacher["agreement"], teacher["round"]]
    model_work = dict(concurrency_id=GENERATION_QUEUE, concurrency_limit=GENERATION_CONCURRENCY)
    store_work = dict(concurrency_id=ARENA_QUEUE, concurrency_limit=ARENA_CONCURRENCY)
    private = dict(api_visibility="private")
    vote_view["next"].click(h["show_next"], None, pair_outputs, **private, **model_work)
    for button, (_, value) in zip(buttons, VOTE_BUTTONS):
        button.click(h["vote_handler"](value), pair_id, [vote_view["reveal"], *buttons], **private, **store_work
                     ).success(h["show_next"], None, pair_outputs, **private, **model_work)
    for side in SIDES:
        rate[side].click(h["rate_handler"](side), [pair_id, *scores[side]], rate[side], **private, **store_work)
    teacher["refresh"].click(h["refresh"], teacher["scope"], board_outputs, **private, **store_work)
    teacher["scope"].change(h["refresh"], teacher["scope"], board_outputs, **private, **store_work)
    teacher["new_class"].click(h["new_session_clicked"], [teacher["class_name"], teacher["scope"]],
                               [*board_outputs, teacher["class_name"]], **private, **store_work)
    teacher["start_round"].click(h["start_round_clicked"], [teacher["round_pairs"], teacher["scope"]], board_outputs,
                                 **private, **model_work)
    teacher["end_round"].click(h["end_round_clicked"], teacher["scope"], board_outputs, **private, **store_work)
    teacher["export"].click(api.arena_export, teacher["scope"], teacher["file"], api_name="arena_export",
                            **store_work)
    for fn in (api.arena_next, api.arena_start_round):
        gr.api(fn, api_name=fn.__name__, **model_work)
    for fn in (api.arena_vote, api.arena_rate, api.arena_leaderboard, api.arena_new_session, api.arena_end_round):
        gr.api(fn, api_name=fn.__name__, **store_work)
    return dict(fn=h["on_load"], inputs=teacher["scope"], outputs=board_outputs, **store_work)


def _first_pair_on_open(tab, show_next, vote_view: dict, pair_id: gr.State) -> None:
    """Opening the Arena tab shows a pair at once (the empty boxes waited for *New pair* before);
    a pair already shown stays, so switching tabs never skips one."""
    outputs = [pair_id, *(vote_view[k] for k in ("dialogue", "summary_a", "summary_b", "status")),
               *vote_view["buttons"], *(radio for side in SIDES for radio in vote_view["scores"][side]),
               *(vote_view["rate"][side] for side in SIDES)]

    @for_students
    def tab_opened(shown: str, request: gr.Request):
        """Reads the shown pair's id; a new pair when none is shown, else no update."""
        return show_next(request) if not shown else tuple(gr.skip() for _ in outputs)

    tab.select(tab_opened, pair_id, outputs, api_visibility="private", show_progress="minimal",
               concurrency_id=GENERATION_QUEUE, concurrency_limit=GENERATION_CONCURRENCY)


def build(studio: Studio, tab=None) -> dict:
    """Build the Arena tab inside the current ``gr.Blocks``; wires its own page-load refresh.

    Returns ``{"api": ArenaEndpoints, "refresh": fn, "load": page-load hook}`` (the store is
    ``api.store``); app.py wires the hook with ``demo.load(**view["load"])``. ``tab``: the Arena's
    ``gr.Tab``; opening it shows the first pair by itself.
    """
    api = ArenaEndpoints(studio)
    vote_view, teacher = voting_panel(), teacher_panel()
    pair_id = gr.State("")  # the shown pair's id; made before the handlers, as the page's order was
    handlers = _handlers(api, len(vote_view["buttons"]))
    load = _wire(api, handlers, vote_view, teacher, pair_id)
    if tab is not None:
        _first_pair_on_open(tab, handlers["show_next"], vote_view, pair_id)
    return {"api": api, "refresh": handlers["refresh"], "load": load, "teacher_only": [teacher[k] for k in TEACHER_CONTROLS]}
