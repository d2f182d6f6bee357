"""QoS profiles our nodes share."""

from __future__ import annotations

from rclpy.qos import QoSProfile

# Service request queues deep enough for a burst: the default depth 10 dropped the excess of a burst
# unanswered while a slow request (a reset, a checkpoint load) was being served. Every request in the
# queue is answered; an overloaded node answers with a refusal that says why.
REQUESTS = QoSProfile(depth=100)
