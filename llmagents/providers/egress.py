"""How the adapters leave this machine as its environment configures it: the TLS
authorities they trust and the proxy they go through. ``Transport`` reads both once per
adapter, when it is made (the runner's start).

- TLS verified against Mozilla's CA bundle (certifi), so that a slim image without system CA
  certificates still verifies, plus the authorities OpenSSL's ``SSL_CERT_FILE`` (a PEM
  bundle) and ``SSL_CERT_DIR`` (``c_rehash`` directories, ``:``-separated) name, for a
  provider or proxy behind a private CA. Added to certifi's, never instead of it; a file
  that cannot be read or holds no certificate is a ``ConfigError`` naming the variable,
  never a quiet fallback. Verification never turns off.
- The proxy the environment names (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, a netrc for
  its credentials), found once per adapter rather than on every request in a thread as
  ``trust_env`` would, by the standard library's rules as aiohttp's are. An ``http://``
  proxy is spoken to in the clear (an https origin then through a ``CONNECT`` tunnel), an
  ``https://`` one over TLS verified like a provider's (TLS inside TLS for an https origin,
  which uvloop and Python 3.11's asyncio both do). aiohttp's own reader of the environment
  drops an ``https://`` proxy with a warning and goes direct, hence ours. Any other scheme
  (SOCKS) is a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl

# The environment's proxy variables, read as aiohttp reads them (it uses these two too).
from urllib.request import getproxies, proxy_bypass

import certifi
from aiohttp.helpers import basicauth_from_netrc, netrc_from_env, strip_auth_from_url
from yarl import URL

from llmagents.errors import ConfigError

CA_FILE_VARIABLE = "SSL_CERT_FILE"
CA_DIR_VARIABLE = "SSL_CERT_DIR"


def tls_context() -> ssl.SSLContext:
    """The verifying TLS context for the environment's extra authorities, if any; a
    ``ConfigError`` naming the variable when they cannot be loaded."""
    return _tls_context_for(
        os.environ.get(CA_FILE_VARIABLE) or None, os.environ.get(CA_DIR_VARIABLE) or None
    )


@functools.cache
def _tls_context_for(ca_file: str | None, ca_dir: str | None) -> ssl.SSLContext:
    """One verifying TLS context for every adapter (per set of extra authorities): building
    one loads the CA bundle, which costs a noticeable fraction of a second. A failure is not
    cached, so a fixed file is read on the next try."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        try:
            # Raises for a PEM file without any certificate too, so a wrong file is seen.
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"{CA_FILE_VARIABLE}={ca_file} cannot be used as CA bundle: {error} (it must "
                "be a readable PEM file holding at least one certificate)"
            ) from None
    if ca_dir is not None:
        for folder in filter(None, ca_dir.split(os.pathsep)):
            # OpenSSL reads a directory's certificates only when verifying: check it now.
            if not os.path.isdir(folder) or not os.access(folder, os.R_OK | os.X_OK):
                raise ConfigError(
                    f"{CA_DIR_VARIABLE}={ca_dir}: {folder} is not a readable directory"
                )
            context.load_verify_locations(capath=folder)
    return context


PROXY_SCHEMES = ("http", "https")


def env_proxy(url: str) -> URL | None:
    """The proxy the environment names for ``url``, with its credentials (from its URL or a
    netrc), or ``None`` (also when ``NO_PROXY`` exempts the host); ``ConfigError`` naming the
    variable for a proxy that cannot be spoken to."""
    target = URL(url)
    if target.host is not None and proxy_bypass(target.host):
        return None
    named = getproxies().get(target.scheme)
    if named is None:
        return None
    proxy, auth = strip_auth_from_url(URL(named))
    if proxy.scheme not in PROXY_SCHEMES or not proxy.host:
        raise ConfigError(
            f"{_proxy_variable(target.scheme, named)}={proxy} names the proxy for {url}, but "
            "only http:// and https:// proxies can be spoken to (set NO_PROXY to reach the "
            "provider directly)"
        )
    if auth is None:
        netrc = netrc_from_env()
        if netrc is not None:
            with contextlib.suppress(LookupError):
                auth = basicauth_from_netrc(netrc, proxy.host)
    if auth is not None:  # aiohttp sends a proxy URL's credentials, to forward and CONNECT alike
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return proxy


def _proxy_variable(scheme: str, value: str) -> str:
    """Which environment variable gave ``value`` as the proxy for ``scheme`` URLs."""
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
        if os.environ.get(name) == value:
            return name
    return f"{scheme.upper()}_PROXY"
