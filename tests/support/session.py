"""This test session's identity: its topics, so it never sees a user's jobs or another session's events."""

from __future__ import annotations

import uuid

from schemas.topics import Topics

SESSION = uuid.uuid4().hex[:8]
TOPICS = Topics(f"test-{SESSION}.tuning")
