"""Undo a rejoin on the lab pair: the lab primary (25432) back as the primary, the lab standby (25434)
rebuilt from it, whatever state a pg_rejoin test left them in."""

from __future__ import annotations

import contextlib

from pg_pair import Pair, answers, restore, sql, wait_for


def passfile(pair: Pair):
    return pair.state_dir / "pg" / "rejoin.pgpass"


def restore_after_rejoin(pair: Pair) -> None:
    data = pair.primary_data
    if answers(pair, pair.primary_port):
        if sql(pair, pair.primary_port, "SELECT pg_is_in_recovery()"):
            # A standby of the promoted lab standby: make it the primary again (the lab standby is then
            # rebuilt from it by lab/pgrepl/up).
            sql(pair, pair.primary_port, "SELECT pg_promote(true, 60)")
            wait_for(lambda: not sql(pair, pair.primary_port, "SELECT pg_is_in_recovery()"), 60,
                     "the lab primary to be promoted back")
    else:
        # Stopped (a refused or failed rejoin): start it as a primary again.
        with contextlib.suppress(FileNotFoundError):
            (data / "standby.signal").unlink()
    restore(pair)
    if sql(pair, pair.primary_port, "SELECT current_setting('primary_conninfo') <> ''"):
        sql(pair, pair.primary_port, "ALTER SYSTEM RESET primary_conninfo")
        sql(pair, pair.primary_port, "SELECT pg_reload_conf()")
    with contextlib.suppress(FileNotFoundError):
        passfile(pair).unlink()
