"""The test PostgreSQL server (tests/pgserver.py) gives each test a working database."""

import pytest
import sqlalchemy as sa


@pytest.mark.postgres
def test_postgres_url_gives_a_fresh_working_database(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            # fresh: no tables of anyone else's
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("create table probe (id integer primary key, name text)"))
            conn.execute(sa.text("insert into probe values (1, 'x')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("select name from probe")).scalar_one() == "x"
            # only on loopback
            assert conn.execute(sa.text("show listen_addresses")).scalar_one() == "127.0.0.1"
    finally:
        engine.dispose()
