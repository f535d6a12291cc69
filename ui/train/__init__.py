"""Train tab: ``tab`` (layout and wiring), ``form`` (one form per registered method),
``handlers`` (the named endpoints), ``monitor`` (runs table, charts, log)."""
