"""The class Arena: blind pairwise votes between two slots.

* ``store``: the SQLite vote store, class sessions and pair serving.
* ``leaderboard``: win rates (Wilson intervals), Bradley–Terry ratings and bootstrap intervals.
"""
