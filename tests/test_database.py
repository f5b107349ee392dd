"""Connections used outside Django's request cycle are recycled as a request would, transactions left alone."""

import pytest
from django.db import connection, transaction

from accounts.models import User
from providers.database import recycle_connections


@pytest.mark.django_db(transaction=True)
def test_an_obsolete_connection_is_replaced_before_use():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("Django never closes an in-memory SQLite database; the PostgreSQL pass runs this")
    User.objects.count()
    stale = connection.connection
    connection.close_at = 0  # past CONN_MAX_AGE

    recycle_connections()

    assert connection.connection is None
    assert User.objects.count() == 0 and connection.connection is not stale


@pytest.mark.django_db(transaction=True)
def test_a_connection_inside_a_transaction_is_left_alone():
    with transaction.atomic():
        User.objects.create_user("dana", password="x")
        connection.close_at = 0
        recycle_connections()
        assert User.objects.filter(username="dana").exists()
    assert User.objects.filter(username="dana").exists()
