"""Raw topic retention: forever by default, ``LEADSTREAM_RAW_RETENTION_DAYS`` when set.

Derived topics never expire whatever the setting, and re-running topic creation brings
an existing raw topic's retention in line with the settings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from ground.kafka_admin import create_topics, delete_topics
from ground.settings import Settings
from ground.topics import Topics

pytestmark = pytest.mark.integration


def _retention(settings: Settings, topic: str) -> str:
    admin = AdminClient(settings.kafka_common_config())
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return str(admin.describe_configs([resource])[resource].result(timeout=30)["retention.ms"].value)


@pytest.fixture
def prefixed(settings: Settings) -> Iterator[Settings]:
    yield settings
    delete_topics(settings, Topics(settings.topic_prefix).all())


def test_raw_retention_applies_to_raw_topics_only_and_follows_the_setting(prefixed: Settings) -> None:
    """7 days on touches/identities/contacts/deals, -1 elsewhere; back to -1 when unset."""
    week = prefixed.model_copy(update={"raw_retention_days": 7.0})
    topics = Topics(prefixed.topic_prefix)
    status = create_topics(week)
    assert set(status.values()) == {"created"}
    for raw in (topics.touches, topics.identities, topics.contacts, topics.deals):
        assert _retention(week, raw) == str(7 * 86_400_000)
    for derived in (topics.enriched_touches, topics.enriched_deals, topics.dead_letter):
        assert _retention(week, derived) == "-1"
    again = create_topics(prefixed)  # the setting removed: raw topics keep events forever again
    assert again[topics.touches] == "exists, retention updated"
    assert again[topics.enriched_touches] == "exists"
    assert _retention(prefixed, topics.touches) == "-1"
