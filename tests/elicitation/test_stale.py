"""Re-elicitation: stale_samples and the replacement rules of the uncertainty table."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.fault_server import FaultMix
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.elicitation import elicit_dataset, stale_samples
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.table import UncertaintyRow, utc_now, write_rows


def _row(sample_id, elicitor, status, u, created):
    return UncertaintyRow(sample_id, "d", elicitor, u, status, None, None, 0, 0, 0.0, 1, created)


def test_stale_samples_lists_missing_failed_foreign_and_expired(store, fault_server):
    _, url = fault_server
    samples = numbered_samples(5)
    ids = write_samples(store, "d", samples)
    cfg = openai_cfg(url, ttl_days=30)
    mine, other = elicitor_fingerprint(cfg), "openai:other:uncertainty_v1:verbalized:00000000"
    now = utc_now()
    write_rows(
        store,
        [
            _row(ids[0], mine, "ok", 0.5, now - timedelta(days=1)),  # fresh: not stale
            _row(ids[1], mine, "ok", 0.5, now - timedelta(days=31)),  # expired
            _row(ids[2], mine, "failed", None, now),  # failed
            _row(ids[3], other, "ok", 0.5, now),  # another elicitor only
        ],
        cutoff=None,
    )  # ids[4]: missing
    assert stale_samples(store, "d", cfg, now) == sorted(ids[1:])
    assert stale_samples(store, "d", cfg.model_copy(update={"ttl_days": None}), now) == sorted(ids[2:])


def test_ok_rows_are_replaced_only_by_an_ok_stale_reelicitation(store):
    write_samples(store, "d", numbered_samples(1))
    sid = numbered_samples(1)[0].sample_id
    old = datetime(2020, 1, 1)

    def current():
        with store.connect() as con:
            return con.execute("SELECT status, uncertainty, created_at FROM uncertainty").fetchall()

    write_rows(store, [_row(sid, "e", "ok", 0.2, old)], cutoff=None)
    write_rows(store, [_row(sid, "e", "ok", 0.9, datetime(2021, 1, 1))], cutoff=None)  # not stale: kept
    assert current() == [("ok", 0.2, old)]
    write_rows(store, [_row(sid, "e", "failed", None, datetime(2021, 1, 1))], cutoff=datetime(2020, 6, 1))
    assert current() == [("ok", 0.2, old)]  # a failed re-elicitation never destroys a score
    write_rows(store, [_row(sid, "e", "ok", 0.9, datetime(2021, 1, 1))], cutoff=datetime(2020, 6, 1))
    assert current() == [("ok", 0.9, datetime(2021, 1, 1))]


def test_stale_before_reelicits_every_ok_row_once(store, fault_server):
    server, url = fault_server
    write_samples(store, "d", numbered_samples(6))
    cfg = openai_cfg(url)
    elicit_dataset("d", cfg, store)
    assert elicit_dataset("d", cfg, store).metadata["calls"] == 0
    server.set_mix(FaultMix())
    redo = elicit_dataset("d", cfg, store, stale_before=datetime.now().astimezone())
    assert redo.metadata["calls"] == 6 and redo.metadata["rows_by_status"]["ok"] == 6
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM uncertainty").fetchone()[0] == 6
