"""Tooling around the product, not part of it (not in the wheel or the image): the local
control plane and process kubelet the cluster tests and ``make demo`` run on, the real-node
harness of the e2e tests, the demo itself, the chaos tests' audit of a run against the fake
providers' books (``audit``), and ``eventually`` for all of them.

``llmagents fake-provider`` (``llmagents.testing.fake_providers``) stays in the package: it
is a user feature for rehearsing faults.
"""
