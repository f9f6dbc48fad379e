"""Local Online Boutique services: the system under test for the local mode.

Three small servers that speak the upstream wire contract (``protos/demo.proto``, package ``hipstershop``):

- ``catalog``         productcatalogservice (gRPC): the 9 upstream products; List/Get/Search; gRPC health.
- ``recommendation``  recommendationservice (gRPC): upstream behaviour; ``max_responses`` 5 (production) or 2 (canary).
- ``frontend``        the shop's HTTP frontend: product pages with a "You May Also Like" section of at most 4 items.

Run one with ``python -m splitproof.setup.boutique <service>`` or ``canary-setup serve <service>`` (``serve``); start
them as child processes with ``launcher.spawn`` / ``launcher.ServiceGroup``. Every server binds 127.0.0.1 by default
and prints ``READY <service> <host>:<port>`` once it serves. Modules: ``grpcutil`` (gRPC server plumbing),
``catalog``, ``recommendation``, ``frontend`` (a package: the servers), ``serve`` (one in this process),
``launcher`` (as children).
"""

from __future__ import annotations

SERVICES = ("catalog", "recommendation", "frontend")
