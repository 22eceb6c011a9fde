"""Test machinery that ships with the package: fake providers, the local cluster harness."""
