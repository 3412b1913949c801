"""Tables of alerting: rules, channels, silences, incidents, their history and the notification outbox.

``alert_incidents`` holds one row per incident (a rule's group from the moment its condition held to
its resolution); ``alert_events`` is the incident history; ``alert_outbox`` holds every notification
to send, written in the same transaction as the state change it announces, so each is sent once;
rows that ran out of attempts stay there as the dead-letter log (``status = 'dead'``).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations


@migrations("0500_monitoring_alerts")
def create_alert_tables(conn: Connection) -> None:
    for spec_table in ("alert_rules", "alert_channels"):
        conn.execute(
            text(
                f"CREATE TABLE {spec_table} ("
                " name VARCHAR(128) PRIMARY KEY,"
                " spec TEXT NOT NULL,"
                " updated_at FLOAT NOT NULL,"
                " updated_by VARCHAR(200))"
            )
        )
    conn.execute(
        text(
            "CREATE TABLE alert_silences ("
            " id VARCHAR(128) PRIMARY KEY,"
            " matchers TEXT NOT NULL,"
            " starts_at FLOAT NOT NULL,"
            " ends_at FLOAT NOT NULL,"
            " comment TEXT,"
            " created_by VARCHAR(200),"
            " created_at FLOAT NOT NULL)"
        )
    )
    conn.execute(
        text(
            "CREATE TABLE alert_incidents ("
            " id VARCHAR(64) PRIMARY KEY,"
            " rule VARCHAR(128) NOT NULL,"
            " group_key TEXT NOT NULL,"
            " labels TEXT NOT NULL,"
            " state VARCHAR(16) NOT NULL,"
            " severity VARCHAR(16) NOT NULL,"
            " value FLOAT,"
            " started_at FLOAT NOT NULL,"
            " fired_at FLOAT,"
            " acknowledged_at FLOAT,"
            " acknowledged_by VARCHAR(200),"
            " resolved_at FLOAT,"
            " silenced INTEGER NOT NULL DEFAULT 0,"
            " notified INTEGER NOT NULL DEFAULT 0,"
            " summary TEXT,"
            " evidence TEXT)"
        )
    )
    conn.execute(text("CREATE INDEX ix_alert_incidents_rule_state ON alert_incidents (rule, state)"))
    conn.execute(text("CREATE INDEX ix_alert_incidents_started ON alert_incidents (started_at)"))
    conn.execute(
        text(
            "CREATE TABLE alert_events ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " incident_id VARCHAR(64) NOT NULL,"
            " at FLOAT NOT NULL,"
            " event VARCHAR(32) NOT NULL,"
            " detail TEXT)"
        )
        if conn.dialect.name == "sqlite"
        else text(
            "CREATE TABLE alert_events ("
            " seq BIGSERIAL PRIMARY KEY,"
            " incident_id VARCHAR(64) NOT NULL,"
            " at FLOAT NOT NULL,"
            " event VARCHAR(32) NOT NULL,"
            " detail TEXT)"
        )
    )
    conn.execute(text("CREATE INDEX ix_alert_events_incident ON alert_events (incident_id, seq)"))
    conn.execute(
        text(
            "CREATE TABLE alert_outbox ("
            " id VARCHAR(64) PRIMARY KEY,"
            " incident_id VARCHAR(64),"
            " channel VARCHAR(128) NOT NULL,"
            " event VARCHAR(16) NOT NULL,"
            " payload TEXT NOT NULL,"
            " status VARCHAR(16) NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0,"
            " next_attempt_at FLOAT NOT NULL,"
            " last_error TEXT,"
            " created_at FLOAT NOT NULL,"
            " sent_at FLOAT)"
        )
    )
    conn.execute(text("CREATE INDEX ix_alert_outbox_status ON alert_outbox (status, next_attempt_at)"))
