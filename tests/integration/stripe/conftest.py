"""The Stripe lab for these tests: real localstripe + the stand-in + the receiver
(tests/lib/stripe_lab.py) on the lab inventory's ports, started once per session and ended after
it (state removed), reset to an empty account before each test."""

from __future__ import annotations

import pytest
from sre_testlib import lab_var
from stripe_lab import StripeLab


@pytest.fixture(scope="session")
def stripe_lab_session():
    lab = StripeLab(int(lab_var("lab_localstripe_port")), int(lab_var("lab_stripe_standin_port")),
                    int(lab_var("lab_stripe_receiver_port"))).start()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture()
def stripe_lab(stripe_lab_session):
    stripe_lab_session.reset()
    return stripe_lab_session


@pytest.fixture()
def failed_events(stripe_lab):
    """An endpoint, 2 events delivered, then the processor fails and 3 events fail delivery;
    the processor is healed again (what the on-call finds after fixing it). Returns
    (endpoint, ids of the failed events)."""
    endpoint = stripe_lab.create_endpoint()
    stripe_lab.create_customers(2)
    assert len(stripe_lab.wait_deliveries(2)) == 2
    stripe_lab.receiver_control(failing=True)
    stripe_lab.create_customers(3)
    deliveries = stripe_lab.wait_deliveries(5)
    failed = sorted(e for e, d in deliveries.items() if d.get(endpoint["id"]) is False)
    assert len(failed) == 3, deliveries
    stripe_lab.receiver_control(failing=False)
    return endpoint, failed
