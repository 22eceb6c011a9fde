"""What ships with the package for rehearsing faults: the fake providers behind
``llmagents fake-provider``. Test harness (the cluster harness, the chaos tests' audit) lives
in ``tooling/``, outside the package, and the runtime never imports it (import-linter)."""
